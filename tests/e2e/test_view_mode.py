"""The read-only view, in Chromium against the real stack: ``open`` with ``mode: "view"``
gives a link to the latest stored version rendered with its outputs; the page has no
editor, typing changes nothing, the notebook's own scripts and HTML do not run, the page
holds no Jupyter session (a PUT with its cookies is refused) and its code is no launch
code at the Hub."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import nbformat
import pytest
from playwright.async_api import Browser

from devstack.command_client import JupyterFiles
from devstack.stack import LocalStack
from orchestrator.operator.subscribe import subscribe_events
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP
from tests.e2e.embedding_steps import gateway_json, new_page, run_command, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
PATH = "shown.ipynb"


def shown_notebook(marker: str) -> dict[str, Any]:
    """A notebook with an output to show, and HTML and scripts that must not run."""
    code = nbformat.v4.new_code_cell("print('hello')")
    code["outputs"] = [
        nbformat.v4.new_output("stream", name="stdout", text=f"{marker}\n"),
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/javascript": "document.title = 'pwned-js'",
                "text/html": "<img src=x onerror=\"document.title='pwned-html'\">",
                "text/plain": "<display>",
            },
        ),
    ]
    markdown = nbformat.v4.new_markdown_cell(
        "# Findings\n<script>document.title = 'pwned-markdown'</script>"
    )
    return dict(nbformat.v4.new_notebook(cells=[markdown, code]))


async def test_a_view_shows_the_latest_version_read_only_and_runs_nothing_of_it(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession, browser: Browser
) -> None:
    user = f"view{uuid.uuid4().hex[:6]}"
    ws = workspace_name(TEST_APP, user)
    marker = f"output-{uuid.uuid4().hex[:8]}"
    await run_command(http, stack, app_key, {"type": "open", "user": user, "path": PATH})
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)
    async with subscribe_events(stack.broker.amqp_url, ["notebook.saved"]) as events:
        await files.write(user, PATH, shown_notebook(marker))
        async with asyncio.timeout(60):
            saved = await events.first(
                lambda e: e.data.get("user") == user and e.data.get("origin") == "jupyter"
            )
    viewed = await run_command(
        http, stack, app_key, {"type": "open", "user": user, "path": PATH, "mode": "view"}
    )
    result = viewed["result"]
    assert (result["mode"], result["version_id"]) == ("view", saved.data["version_id"])

    page = await new_page(browser)
    try:
        response = await page.goto(result["launch_url"])
        assert response is not None and response.status == 200
        policy = response.headers["content-security-policy"]
        assert "sandbox" in policy and "script-src" not in policy, policy
        assert f"frame-ancestors 'self' {stack.options.app_origins[0]}" in policy, policy
        await page.get_by_text(marker).first.wait_for()  # the output is shown
        assert await page.get_by_text("Findings").count() >= 1
        assert await page.locator("[contenteditable=true], textarea, .cm-content").count() == 0
        await page.mouse.click(200, 200)
        await page.keyboard.type("typed into a view")
        await page.keyboard.press("Control+s")
        assert "pwned" not in await page.title()
        await screenshot(page, "view-mode")

        # no Jupyter session came with the view: its cookies write nothing
        put = await page.request.put(
            f"{stack.hub.url}/user/{ws}/api/contents/{PATH}",
            data={"type": "notebook", "format": "json", "content": shown_notebook("overwritten")},
            max_redirects=0,
        )
        assert put.status in (302, 401, 403), put.status
        # and the view code logs nobody in at the Hub
        launch = await page.request.get(
            f"{stack.hub.url}/hub/launch?code={result['launch_url'].rsplit('/', 1)[1]}",
            max_redirects=0,
        )
        assert launch.status == 403, launch.status
    finally:
        await page.context.close()
    listed = await gateway_json(http, stack, app_key, f"/v1/users/{user}/versions", path=PATH)
    assert listed["versions"][0]["id"] == saved.data["version_id"]  # nothing new stored
    on_disk = await files.read(user, PATH)
    assert on_disk is not None
    assert marker in str(on_disk["content"]) and "overwritten" not in str(on_disk["content"])

    async with http.get(result["launch_url"][:-4] + "AAAA") as forged:
        assert forged.status == 404
