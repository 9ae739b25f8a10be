"""Idle culling as a person meets it, in a real browser on the real stack.

While the person types in the embedded notebook the server is not culled. Once the
page is hidden (the person switched tabs; JupyterLab stops its polling) the server
goes idle: the demo shows the warning, the cull asks the open page to save through
the embed bridge, the unsaved edit ends up as a version, and the demo says the
notebook was closed for inactivity.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Frame, Page

from devstack.demo.launcher import DEMO_APP_NAME
from devstack.stack import LocalStack
from schemas.workspaces import workspace_name
from tests.e2e.embedding_steps import (
    cell_sources,
    gateway_json,
    load_user,
    new_page,
    open_notebook,
    screenshot,
    type_in_first_cell,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

IDLE_TIMEOUT = 15
GRACE = 3
CULL_INTERVAL = 4  # the session stack's ORCH_CULL_INTERVAL_SECONDS
TYPING_SECONDS = IDLE_TIMEOUT + CULL_INTERVAL + GRACE  # unwatched, culled by now
PATH = "work/culled.ipynb"

# What a browser does when its tab goes to the background: the document says it is
# hidden, and JupyterLab's polls (standby "when-hidden") stop asking the server.
HIDE_PAGE = """() => {
    Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


@pytest.fixture
def short_culling(stack: LocalStack) -> Iterator[None]:
    """The demo app culls after 15 s idle and 3 s of warning, for this test only."""
    stack.orchestrator_cli(
        "servers", "policy", DEMO_APP_NAME, "--idle-timeout", str(IDLE_TIMEOUT),
        "--grace", str(GRACE),
    )  # fmt: skip
    try:
        yield
    finally:
        stack.orchestrator_cli(
            "servers", "policy", DEMO_APP_NAME, "--idle-timeout", "3600", "--grace", "300",
        )  # fmt: skip


def jupyter_frame(page: Page) -> Frame:
    """The embedded JupyterLab's frame."""
    return next(f for f in page.frames if "/user/" in f.url)


async def _running(stack: LocalStack, user: str) -> bool:
    listed = json.loads(await asyncio.to_thread(stack.orchestrator_cli, "servers", "--json"))
    rows = [r for r in listed if r["workspace"] == workspace_name(DEMO_APP_NAME, user)]
    return bool(rows) and rows[0]["running"] and rows[0]["cull"] is None


async def test_a_typing_user_keeps_the_server_and_unsaved_edits_survive_the_cull(
    demo: str,
    browser: Browser,
    stack: LocalStack,
    username: str,
    http: aiohttp.ClientSession,
    short_culling: None,
) -> None:
    demo_key = await asyncio.to_thread(stack.issue_app_key, DEMO_APP_NAME)
    page = await new_page(browser)
    try:
        await load_user(page, demo, username)
        frame = await open_notebook(page, PATH)

        # Typing (a person at work) for longer than timeout and grace: no cull.
        await type_in_first_cell(frame, page, "draft ")
        loop = asyncio.get_running_loop()
        until = loop.time() + TYPING_SECONDS
        while loop.time() < until:
            await page.keyboard.type("x")  # into the focused cell
            await asyncio.sleep(2)  # a person's pace, not a wait for an event
        assert await page.locator("#cull-notice").is_hidden()
        assert await _running(stack, username)

        # The last edit stays unsaved; then the tab goes to the background.
        await type_in_first_cell(frame, page, "unsaved at cull time")
        await page.locator("#status[data-state=dirty]").wait_for()  # the bridge says so
        await jupyter_frame(page).evaluate(HIDE_PAGE)
        await page.locator("#cull-notice").wait_for(
            state="visible", timeout=(IDLE_TIMEOUT + 6 * CULL_INTERVAL + 30) * 1000
        )
        warned = datetime.now(UTC)
        await page.locator("#status[data-state=closed]").wait_for(
            timeout=(GRACE + 6 * CULL_INTERVAL + 60) * 1000
        )
        status = await page.inner_text("#status")
    except Exception:
        await screenshot(page, "failed-culling")
        raise
    finally:
        await page.context.close()
    assert "inactivity" in status, status
    versions: list[dict[str, Any]] = (
        await gateway_json(http, stack, demo_key, f"/v1/users/{username}/versions", path=PATH)
    )["versions"]
    latest = await gateway_json(http, stack, demo_key, f"/v1/versions/{versions[0]['id']}")
    assert latest["origin"] == "jupyter", latest
    # stored after the warning: by the cull, which had the page save it (JupyterLab's own
    # autosave comes 120 s after opening, later than this whole test)
    assert datetime.fromisoformat(latest["created_at"]) > warned
    assert cell_sources(latest["content"])[0] == "unsaved at cull time"
    assert not await _running(stack, username)
