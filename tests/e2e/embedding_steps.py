"""Steps the browser tests of embedding share: demo page actions, gateway reads, artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, FrameLocator, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from devstack.stack import LocalStack
from schemas.workspaces import workspace_name

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "embedding"
SPAWN_TIMEOUT_MS = 180_000
EVENT_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 860}


async def new_page(browser: Browser) -> Page:
    """A page in a fresh browser context (its own cookies)."""
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    return await context.new_page()


async def screenshot(page: Page, name: str) -> Path:
    """Keep a screenshot under ``test-artifacts/embedding/``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


async def load_user(page: Page, demo_url: str, user: str) -> None:
    """Open the demo page and pick ``user``; returns once its save stream is connected."""
    await page.goto(demo_url + "/")
    await page.wait_for_selector("body[data-demo-ready=true]")
    await page.fill("#user", user)
    await page.click("#load-user")
    await page.wait_for_function("window.demo.streamOpen === true")


async def open_notebook(page: Page, path: str) -> FrameLocator:
    """Open ``path`` through the demo (``open`` command, launch link, bridge ready)."""
    await page.fill("#new-path", path)
    await page.click("#open-new")
    await page.wait_for_function("window.demo.ready === true", timeout=SPAWN_TIMEOUT_MS)
    return page.frame_locator("#jupyter")


async def wait_for_status(page: Page, state: str, timeout_ms: int = EVENT_TIMEOUT_MS) -> str:
    """Wait until the demo's status shows ``state``; fail with what it shows instead."""
    try:
        await page.wait_for_selector(f"#status[data-state={state}]", timeout=timeout_ms)
    except PlaywrightTimeout:
        await screenshot(page, f"failed-waiting-for-{state}")
        shown = await page.inner_text("#status")
        activity = await page.inner_text("#log")
        raise AssertionError(
            f"status never became {state!r}: {shown!r}; log:\n{activity}"
        ) from None
    return await page.inner_text("#status")


async def save_in_app(page: Page, previous: str | None) -> str:
    """Press the app's Save; the id of the version it stored (different from ``previous``).

    Waits on the demo's record of the save, not on its status line: the kernel starting
    up may mark the notebook dirty again right after a save.
    """
    await page.click("#save")
    try:
        saved = await page.wait_for_function(
            """previous => window.demo.lastSave
                && window.demo.lastSave.version_id !== previous
                && window.demo.lastSave.version_id""",
            arg=previous,
            timeout=EVENT_TIMEOUT_MS,
        )
    except PlaywrightTimeout:
        await screenshot(page, "failed-app-save")
        status = await page.inner_text("#status")
        raise AssertionError(f"the app's Save did not finish: {status}") from None
    version_id: str = await saved.json_value()
    return version_id


async def type_in_first_cell(frame: FrameLocator, page: Page, text: str) -> None:
    """Replace the first cell's source with ``text`` by typing (a real edit)."""
    editor = frame.locator(".jp-Notebook .jp-Cell .cm-content").first
    await editor.click()
    # Keys typed in command mode would be notebook shortcuts: wait for the focused editor.
    await frame.locator(".jp-Notebook.jp-mod-editMode .jp-Cell .cm-editor.cm-focused").wait_for()
    await page.keyboard.press("Control+a")
    await page.keyboard.type(text)
    await frame.locator(".jp-Notebook .jp-Cell .cm-content", has_text=text).first.wait_for()


async def gateway_json(
    http: aiohttp.ClientSession, stack: LocalStack, app_key: str, resource: str, **params: str
) -> Any:
    """GET a gateway resource (``/v1/...``) as the tests app, with query ``params``."""
    async with http.get(
        stack.gateway_url + resource, params=params, headers={"Authorization": f"Bearer {app_key}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def cell_sources(notebook: dict[str, Any]) -> list[str]:
    """The source text of every cell of an nbformat dict."""
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in notebook["cells"]
    ]


async def run_command(
    http: aiohttp.ClientSession, stack: LocalStack, app_key: str, command: dict[str, Any]
) -> dict[str, Any]:
    """Send a command and long-poll it to the end; asserts it succeeded."""
    auth = {"Authorization": f"Bearer {app_key}"}
    async with http.post(stack.gateway_url + "/v1/commands", json=command, headers=auth) as resp:
        assert resp.status == 202, await resp.text()
        view: dict[str, Any] = await resp.json()
    for _ in range(8):
        if view["status"] in ("succeeded", "failed", "rejected"):
            break
        view = await gateway_json(http, stack, app_key, f"/v1/commands/{view['id']}", wait="30")
    assert view["status"] == "succeeded", json.dumps(view)
    return view


async def server_file(
    http: aiohttp.ClientSession, stack: LocalStack, app: str, user: str, path: str
) -> dict[str, Any]:
    """The notebook as ``user``'s Jupyter server in ``app``'s workspace has it on disk
    (through the Hub's proxy)."""
    async with http.get(
        f"{stack.hub.url}/user/{workspace_name(app, user)}/api/contents/{path}",
        params={"content": "1"},
        headers={"Authorization": f"token {stack.service_token}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        content: dict[str, Any] = (await resp.json())["content"]
        return content


async def launch_link(
    http: aiohttp.ClientSession, stack: LocalStack, app_key: str, user: str, path: str
) -> str:
    """A fresh one-time launch link of ``user`` for ``path``, as the key's app asks for it."""
    async with http.post(
        f"{stack.gateway_url}/v1/users/{user}/launch",
        json={"path": path},
        headers={"Authorization": f"Bearer {app_key}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        url: str = (await resp.json())["launch_url"]
        return url
