"""Embedding from another site, with third-party cookies blocked, in a real Chromium.

The demo app is served over HTTPS at ``https://localhost:PORT``; the Hub over HTTPS at
``https://127.0.0.1:PORT``: two sites to a browser, so every cookie of the iframe is a
third-party cookie. The browser profile blocks third-party cookies (Chrome's "Block
third-party cookies" setting) and accepts exactly the stack's certificate (by its key).

First a probe shows this browser really drops a third-party cookie that is only
``SameSite=None; Secure``, and keeps a ``Partitioned`` one. Then the journey: launch
link → iframe → JupyterLab → a cell typed and run (the kernel's websocket authenticates)
→ the app's Save makes a version with the typed text. Every cookie the Hub and the
server set is partitioned under the app's site.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Response, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from devstack.demo.launcher import DEMO_APP_NAME, demo_origin, start_demo
from devstack.ports import hold_port
from devstack.stack import LocalStack, StackOptions
from devstack.tls import WebTls
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.embedding_steps import (
    VIEWPORT,
    cell_sources,
    gateway_json,
    load_user,
    open_notebook,
    save_in_app,
    screenshot,
    type_in_first_cell,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
PATH = "shared/cross-site.ipynb"
# Chrome's setting "Block third-party cookies" (chrome://settings/cookies), as stored
BLOCK_THIRD_PARTY_COOKIES = {"profile": {"cookie_controls_mode": 1}}


@pytest.fixture(scope="module")
def app_socket() -> Iterator[socket.socket]:
    held = hold_port()
    try:
        yield held
    finally:
        held.close()


@pytest.fixture(scope="module")
def cross_site(
    tmp_path_factory: pytest.TempPathFactory, app_socket: socket.socket
) -> Iterator[LocalStack]:
    origin = demo_origin(app_socket.getsockname()[1], cross_site=True)
    options = StackOptions(consumers=1, app_origins=[origin], cross_site_origins=[origin])
    with LocalStack(tmp_path_factory.mktemp("cross-site"), options) as local:
        yield local


@pytest.fixture(scope="module")
def cross_site_demo(cross_site: LocalStack, app_socket: socket.socket) -> Iterator[str]:
    process = start_demo(cross_site, app_socket, cross_site=True)
    try:
        yield demo_origin(app_socket.getsockname()[1], cross_site=True)
    finally:
        process.stop()


@pytest.fixture
async def blocking_browser(cross_site: LocalStack, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium with third-party cookies blocked, accepting the stack's certificate."""
    tls = cross_site.web_tls
    assert tls is not None
    profile = tmp_path / "chromium-profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps(BLOCK_THIRD_PARTY_COOKIES))
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={tls.spki_sha256()}"]
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=args,
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def cookie_probe(cross_site: LocalStack) -> AsyncIterator[str]:
    """An HTTPS server on 127.0.0.1 (the Hub's site) that sets two cookies, one of them
    partitioned, and shows which cookies come back; yields its origin."""
    tls: WebTls | None = cross_site.web_tls
    assert tls is not None

    async def set_cookies(_request: web.Request) -> web.Response:
        response = web.Response(text="set", content_type="text/html")
        response.headers.add("Set-Cookie", "plain=1; Path=/; SameSite=None; Secure")
        response.headers.add("Set-Cookie", "chips=1; Path=/; SameSite=None; Secure; Partitioned")
        return response

    async def show_cookies(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", ""), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/set", set_cookies)
    app.router.add_get("/show", show_cookies)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_third_party_cookies_are_blocked_in_this_browser_but_partitioned_ones_are_kept(
    blocking_browser: BrowserContext, cross_site_demo: str, cookie_probe: str
) -> None:
    page = await blocking_browser.new_page()
    await page.goto(cross_site_demo + "/")
    shown = await page.evaluate(
        """async (probe) => {
            const load = (url) => new Promise((resolve) => {
                const frame = document.createElement('iframe');
                frame.onload = () => resolve(frame);
                frame.src = url;
                document.body.appendChild(frame);
            });
            await load(`${probe}/set`);
            const frame = await load(`${probe}/show`);
            return frame.contentWindow === null ? null : 'loaded';
        }""",
        cookie_probe,
    )
    assert shown == "loaded"
    sent = await page.frame_locator("iframe >> nth=-1").locator("body").inner_text()
    assert sent.strip() == "chips=1", sent


async def test_the_app_on_another_site_opens_edits_runs_and_saves_a_notebook(
    cross_site: LocalStack,
    cross_site_demo: str,
    blocking_browser: BrowserContext,
    http: aiohttp.ClientSession,
    username: str,
) -> None:
    hub_responses: list[Response] = []
    page = await blocking_browser.new_page()
    page.on(
        "response",
        lambda r: hub_responses.append(r) if r.url.startswith(cross_site.hub.url) else None,
    )
    await load_user(page, cross_site_demo, username)
    frame = await open_notebook(page, PATH)
    marker = f"print('cross-site', {uuid.uuid4().int % 1000} * 2)"
    await type_in_first_cell(frame, page, marker)
    # JupyterLab skips a run while the notebook has no kernel yet: wait until the status
    # bar shows its kernel idle (it says so only once connected, over the websocket; the
    # toolbar's indicator starts out "idle" before any kernel), then run the cell
    await frame.locator("[title^='Change kernel for']", has_text="| Idle").wait_for(timeout=120_000)
    await page.keyboard.press("Shift+Enter")
    try:
        await frame.locator(".jp-OutputArea-output", has_text="cross-site").first.wait_for(
            timeout=120_000
        )
    except PlaywrightTimeout:
        await screenshot(page, "failed-cross-site-run")
        raise AssertionError(f"no output; demo log:\n{await page.inner_text('#log')}") from None
    version_id = await save_in_app(page, None)
    await screenshot(page, "cross-site-third-party-cookies-blocked")

    demo_key = cross_site.issue_app_key(DEMO_APP_NAME)
    stored = await gateway_json(http, cross_site, demo_key, f"/v1/versions/{version_id}")
    assert marker in cell_sources(stored["content"])

    jar = [c for c in await blocking_browser.cookies() if c["domain"] == "127.0.0.1"]
    assert jar, "the Hub set no cookies"
    for cookie in jar:  # every one of them only for this app's site
        assert cookie.get("partitionKey") == "https://localhost", cookie
        assert cookie["sameSite"] == "None" and cookie["secure"], cookie
    names = {cookie["name"] for cookie in jar}
    assert "jupyterhub-session-id" in names and any(n.startswith("jupyterhub-user-") for n in names)
    set_cookies = [
        header["value"]
        for response in hub_responses
        for header in await response.headers_array()
        if header["name"].lower() == "set-cookie"
    ]
    # every cookie set with a value is partitioned (JupyterHub clears the OAuth state
    # cookie without the options: that deletion misses, and the cookie expires in 10 min)
    kept = [h for h in set_cookies if not h.split(";")[0].endswith('=""')]
    assert kept and all("Partitioned" in h for h in kept), set_cookies
