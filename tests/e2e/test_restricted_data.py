"""Restricted-data mode, tried as a user who wants the data out would: on a stack whose
servers run in that mode, the orchestrator still opens, saves and reads notebooks, and
the person works in JupyterLab (sees the notebook, types, saves); but downloads
(`/files/`), exports (nbconvert) and reads with the user's own API token are refused
by the server, from outside and from the page itself, and the UI offers no Download or
Export.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import aiohttp
import pytest
from playwright.async_api import Browser

from devstack.stack import LocalStack, StackOptions
from schemas.workspaces import workspace_name
from tests.e2e.embedding_steps import (
    SPAWN_TIMEOUT_MS,
    new_page,
    run_command,
    screenshot,
    server_file,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
APP = "restricted"
PATH = "secret.ipynb"


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(consumers=1, restricted_data=True)
    with LocalStack(tmp_path_factory.mktemp("restricted"), options) as local:
        yield local


@pytest.fixture(scope="module")
def key(restricted: LocalStack) -> str:
    return restricted.issue_app_key(APP)


async def _user_token(http: aiohttp.ClientSession, stack: LocalStack, ws: str) -> str:
    """An API token of the workspace's own Hub user (as the Hub's token page makes)."""
    async with http.post(
        f"{stack.hub.api_url}/users/{quote(ws)}/tokens",
        json={"note": "a user's own token", "expires_in": 600},
        headers={"Authorization": f"token {stack.hub_admin_token}"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
        return token


async def _status(http: aiohttp.ClientSession, url: str, token: str, **query: str) -> int:
    async with http.get(url, params=query, headers={"Authorization": f"token {token}"}) as resp:
        await resp.read()
        return resp.status


async def test_downloads_exports_and_token_reads_are_refused_while_the_orchestrator_works(
    restricted: LocalStack, key: str, http: aiohttp.ClientSession
) -> None:
    user = f"r{uuid.uuid4().hex[:6]}"
    ws = workspace_name(APP, user)
    await run_command(http, restricted, key, {"type": "open", "user": user, "path": PATH})
    saved = await run_command(http, restricted, key, {"type": "save", "user": user, "path": PATH})
    assert saved["result"]["path"] == PATH  # the orchestrator reads through its service token
    base = f"{restricted.hub.url}/user/{quote(ws)}"
    service = restricted.service_token
    mine = await _user_token(http, restricted, ws)
    contents = f"{base}/api/contents/{PATH}"
    assert await _status(http, contents, service, content="1") == 200
    assert await _status(http, contents, mine, content="1") == 403  # a copy out, scripted
    assert await _status(http, contents, mine, content="1", type="file", format="base64") == 403
    assert await _status(http, contents, mine, content="0") == 200  # what exists: not data
    for token in (mine, service):
        assert await _status(http, f"{base}/files/{PATH}", token) == 403
        assert await _status(http, f"{base}/files/{PATH}", token, download="1") == 403
        assert await _status(http, f"{base}/nbconvert/html/{PATH}", token) == 403
        assert await _status(http, f"{base}/nbconvert/script/{PATH}", token, download="true") == 403
        assert await _status(http, f"{base}/api/nbconvert", token) == 403


async def test_the_person_works_in_jupyterlab_but_finds_no_way_to_take_the_notebook_out(
    restricted: LocalStack, key: str, http: aiohttp.ClientSession, browser: Browser
) -> None:
    user = f"r{uuid.uuid4().hex[:6]}"
    ws = workspace_name(APP, user)
    opened = await run_command(http, restricted, key, {"type": "open", "user": user, "path": PATH})
    page = await new_page(browser)
    try:
        await page.goto(opened["result"]["launch_url"])
        editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        await editor.wait_for(timeout=SPAWN_TIMEOUT_MS)  # the session reads the notebook
        marker = f"kept_inside = '{uuid.uuid4().hex[:8]}'"
        await editor.click()
        await page.keyboard.type(marker)
        await page.keyboard.press("Control+s")  # the session writes it
        async with asyncio.timeout(60):
            while True:
                content = await server_file(http, restricted, APP, user, PATH)
                if marker in "".join(str(c["source"]) for c in content["cells"]):
                    break
                await asyncio.sleep(0.5)  # the contents API offers no change event here

        await page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
        menu = page.locator(".lm-Menu").first
        await menu.wait_for()
        labels = await menu.locator(".lm-Menu-itemLabel").all_inner_texts()
        assert labels and "Save" in " ".join(labels), labels
        assert not any("Download" in label or "Export" in label for label in labels), labels
        await screenshot(page, "restricted-file-menu")
        await page.keyboard.press("Escape")

        statuses = await page.evaluate(
            """async ([base, path]) => {
                const get = async (url) => (await fetch(url, {credentials: "same-origin"})).status;
                return [
                    await get(`${base}/files/${path}?download=1`),
                    await get(`${base}/nbconvert/html/${path}?download=true`),
                ];
            }""",
            [f"/user/{ws}", PATH],
        )
        assert statuses == [403, 403], statuses
    finally:
        await page.context.close()
