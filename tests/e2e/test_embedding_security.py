"""Embedding security in a real browser: one-time launch links, CSP framing, origin checks.

- A launch link logs a browser in once; reused, expired or forged it is refused with a
  clear page; there is no login form to fall back to.
- Jupyter (Hub and single-user server) sends ``frame-ancestors 'self' <demo origin>``:
  a page on any other origin cannot frame it.
- The Jupyter half of the bridge ignores a foreign-origin window that opened Jupyter in
  a popup, and answers the allowed embedding app only for its fixed actions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage

from devstack.stack import LocalStack
from schemas.launch_codes import issue_launch_code
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP
from tests.e2e.embedding_steps import (
    SPAWN_TIMEOUT_MS,
    cell_sources,
    launch_link,
    load_user,
    new_page,
    open_notebook,
    run_command,
    screenshot,
    server_file,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
PATH = "work/secure.ipynb"
CHANNEL = "orchestrator-embed/v1"


@pytest.fixture(scope="module")
async def opened(stack: LocalStack, app_key: str) -> str:
    """One user of this module whose server runs with ``PATH`` in it (``open`` command)."""
    user = f"sec{uuid.uuid4().hex[:10]}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await run_command(http, stack, app_key, {"type": "open", "user": user, "path": PATH})
    return user


def hub_user(user: str) -> str:
    """The Hub user of ``user``'s workspace in the tests' app."""
    return workspace_name(TEST_APP, user)


class ForeignSite:
    """A page server on an origin that is NOT an allowed app origin."""

    def __init__(self) -> None:
        self.port = 0  # set once the server holds its port
        self.pages: dict[str, str] = {}

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.pages[request.match_info["name"]], content_type="text/html")


@pytest.fixture
async def foreign() -> AsyncIterator[ForeignSite]:
    site = ForeignSite()
    app = web.Application()
    app.router.add_get("/{name}", site._page)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)  # the OS picks a port and we hold it
    await server.start()
    site.port = runner.addresses[0][1]
    try:
        yield site
    finally:
        await runner.cleanup()


async def test_a_launch_link_works_once_then_is_refused(
    stack: LocalStack,
    browser: Browser,
    app_key: str,
    http: aiohttp.ClientSession,
    opened: str,
) -> None:
    url = await launch_link(http, stack, app_key, opened, PATH)
    assert "token" not in url and stack.launch_secret not in url

    first = await new_page(browser)
    try:
        response = await first.goto(url)
        assert response is not None and response.ok
        assert urlsplit(first.url).path == f"/user/{hub_user(opened)}/lab/tree/{PATH}"
        await first.locator(".jp-Notebook").first.wait_for(timeout=SPAWN_TIMEOUT_MS)
        cookies = {c["name"] for c in await first.context.cookies()}
        assert "jupyterhub-hub-login" in cookies
    finally:
        await first.context.close()

    again = await new_page(browser)
    try:
        response = await again.goto(url)
        assert response is not None and response.status == 410
        assert "already been used" in await again.content()
        await screenshot(again, "10-launch-link-reused")
        assert "jupyterhub-hub-login" not in {c["name"] for c in await again.context.cookies()}
    finally:
        await again.context.close()


async def test_expired_forged_and_missing_codes_are_refused(
    stack: LocalStack, browser: Browser, app_key: str, http: aiohttp.ClientSession, opened: str
) -> None:
    expired = issue_launch_code(
        stack.launch_secret, hub_user(opened), PATH, ttl_seconds=120, now=time.time() - 121
    )
    genuine = parse_qs(urlsplit(await launch_link(http, stack, app_key, opened, PATH)).query)[
        "code"
    ][0]
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    page = await new_page(browser)
    try:
        cases = [
            (f"/hub/launch?code={expired}", 410, "expired"),
            (f"/hub/launch?code={forged}", 403, "not valid"),
            ("/hub/launch", 403, "not valid"),
            ("/hub/login", 403, "no sign-in form"),
        ]
        for path, status, words in cases:
            response = await page.goto(stack.hub.url + path)
            assert response is not None and response.status == status, path
            assert words in await page.content(), path
        await screenshot(page, "11-no-login-form")
        # The genuine code was not spent by the forgery: it still logs in.
        response = await page.goto(f"{stack.hub.url}/hub/launch?code={genuine}")
        assert response is not None and response.ok
        assert urlsplit(page.url).path == f"/user/{hub_user(opened)}/lab/tree/{PATH}"
    finally:
        await page.context.close()


def _frame_ancestors(policy: str) -> list[str]:
    return [d.strip() for d in policy.split(";") if d.strip().startswith("frame-ancestors")]


async def test_csp_lets_only_the_app_origin_frame_jupyter(
    stack: LocalStack,
    demo: str,
    browser: Browser,
    http: aiohttp.ClientSession,
    opened: str,
    foreign: ForeignSite,
) -> None:
    expected = f"frame-ancestors 'self' {demo}"
    async with http.get(f"{stack.hub.url}/hub/login") as resp:
        assert _frame_ancestors(resp.headers["Content-Security-Policy"]) == [expected]
    async with http.get(
        f"{stack.hub.url}/user/{hub_user(opened)}/api/contents/{PATH}",
        headers={"Authorization": f"token {stack.service_token}"},
    ) as resp:
        assert resp.status == 200
        assert _frame_ancestors(resp.headers["Content-Security-Policy"]) == [expected]

    foreign.pages["frame"] = (
        f'<iframe id="hub" src="{stack.hub.url}/hub/login"></iframe>'
        f'<iframe id="lab" src="{stack.hub.url}/user/{hub_user(opened)}/lab/tree/{PATH}"></iframe>'
    )
    page = await new_page(browser)
    refusals: list[str] = []
    both_refused = asyncio.Event()

    def on_console(message: ConsoleMessage) -> None:
        if "frame-ancestors" in message.text and "blocked" in message.text:
            refusals.append(message.text)
            if len(refusals) >= 2:
                both_refused.set()

    page.on("console", on_console)
    try:
        await page.goto(f"{foreign.origin}/frame")
        async with asyncio.timeout(30):
            await both_refused.wait()
        assert all(expected in text for text in refusals)
        assert [f.url for f in page.frames[1:]] == ["chrome-error://chromewebdata/"] * 2
    finally:
        await page.context.close()


async def test_the_bridge_ignores_a_foreign_popup_opener(
    stack: LocalStack,
    browser: Browser,
    app_key: str,
    http: aiohttp.ClientSession,
    opened: str,
    foreign: ForeignSite,
) -> None:
    foreign.pages["opener"] = (
        "<script>window.received = [];"
        "window.addEventListener('message', e => window.received.push(e.data));</script>"
    )
    url = await launch_link(http, stack, app_key, opened, PATH)
    page = await new_page(browser)
    try:
        await page.goto(f"{foreign.origin}/opener")
        async with page.expect_popup() as popup_info:
            await page.evaluate("url => { window.jupyter = window.open(url); }", url)
        popup = await popup_info.value
        bridge_active = asyncio.Event()
        ignored = asyncio.Event()

        def on_console(message: ConsoleMessage) -> None:
            if "orchestrator-embed: active" in message.text:
                bridge_active.set()
            if f"orchestrator-embed: ignored message from {foreign.origin}" in message.text:
                ignored.set()

        popup.on("console", on_console)
        cell = popup.locator(".jp-Notebook .jp-Cell .cm-content").first
        await cell.wait_for(timeout=SPAWN_TIMEOUT_MS)
        async with asyncio.timeout(60):
            await bridge_active.wait()
        marker = f"never_saved = '{uuid.uuid4().hex[:8]}'"
        await cell.click()
        await popup.keyboard.type(marker)
        await page.evaluate(
            """channel => {
                for (const type of ['save', 'state']) {
                    window.jupyter.postMessage({channel, type, id: type}, '*');
                }
            }""",
            CHANNEL,
        )
        async with asyncio.timeout(30):
            await ignored.wait()
        assert await page.evaluate("window.received") == []
        assert marker not in cell_sources(await server_file(http, stack, TEST_APP, opened, PATH))
        await screenshot(popup, "12-popup-ignores-foreign-opener")
    finally:
        await page.context.close()


async def test_the_bridge_offers_only_its_fixed_actions_to_the_app(
    demo: str, browser: Browser, opened: str
) -> None:
    page = await new_page(browser)
    try:
        await load_user(page, demo, opened)
        await open_notebook(page, PATH)
        answers = await page.evaluate(
            """channel => new Promise(resolve => {
                const frame = document.getElementById('jupyter');
                const origin = new URL(frame.src).origin;
                const answers = {};
                window.addEventListener('message', event => {
                    if (event.data && event.data.channel === channel && event.data.id) {
                        answers[event.data.id] = event.data;
                        if (Object.keys(answers).length === 2) resolve(answers);
                    }
                });
                frame.contentWindow.postMessage(
                    {channel, type: 'execute', command: 'terminal:create-new', id: 'cmd'}, origin);
                frame.contentWindow.postMessage({channel, type: 'state', id: 'state'}, origin);
            })""",
            CHANNEL,
        )
        assert answers["cmd"]["ok"] is False
        assert answers["cmd"]["reason"] == "unsupported action: execute"
        assert answers["state"]["ok"] is True and answers["state"]["path"] == PATH
    finally:
        await page.context.close()
