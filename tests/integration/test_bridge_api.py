"""The flush bridge inside a real single-user server, through the Hub's proxy.

The shared stack's servers load the save extension, which registers the bridge. The
orchestrator's side is played with the Hub service token; a page's side with the same
token (the server cannot tell). What matters most: none of the bridge's endpoints moves
the server's ``last_activity``, which a tracked API call does move.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import pytest

from devstack.command_client import CommandClient, JupyterFiles
from devstack.stack import LocalStack
from tests.conftest import TEST_APP

PAGE = "itest-page-1"


class ServerUnderTest:
    """One freshly started server of the tests' app, called with the service token."""

    def __init__(self, stack: LocalStack, http: aiohttp.ClientSession, hub_user: str) -> None:
        self.http = http
        self.base = f"{stack.hub.url}/user/{hub_user}"
        self.auth = {"Authorization": f"token {stack.service_token}"}

    async def call(
        self, method: str, path: str, *, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        """``method`` ``path`` (under the server's URL); asserts the status, returns JSON."""
        async with self.http.request(
            method, f"{self.base}/{path}", headers=self.auth, **kwargs
        ) as response:
            assert response.status == expect, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def last_activity(self) -> str:
        """The server's own ``last_activity`` (``/api/status`` does not move it)."""
        status = await self.call("GET", "api/status")
        activity: str = status["last_activity"]
        return activity


@pytest.fixture
async def server(stack: LocalStack, app_key: str, http: aiohttp.ClientSession) -> ServerUnderTest:
    """A running server of a new person in the tests' app."""
    person = f"b{uuid.uuid4().hex[:10]}"
    await CommandClient(http, stack.gateway_url, app_key).succeed(
        {"type": "start-server", "user": person}
    )
    hub_user = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP).hub_user(person)
    return ServerUnderTest(stack, http, hub_user)


async def test_the_bridge_answers_and_never_counts_as_activity(server: ServerUnderTest) -> None:
    before = await server.last_activity()

    started = time.monotonic()
    first = await server.call("GET", "orchestrator/bridge/wait", params={"page": PAGE})
    assert first == {"flush": None, "current": 0}
    assert time.monotonic() - started < 5  # answered at once, not after the long poll

    # A page waits; the orchestrator's flush wakes it; the page reports; the flush ends.
    waiting = asyncio.create_task(
        server.call("GET", "orchestrator/bridge/wait", params={"page": PAGE, "after": "0"})
    )
    await asyncio.sleep(0.5)
    flushing = asyncio.create_task(
        server.call("POST", "orchestrator/bridge/flush", params={"timeout": "10"})
    )
    assert await asyncio.wait_for(waiting, 10) == {"flush": 1}
    report = {"page": PAGE, "flush": 1, "saved": ["a.ipynb"], "failed": []}
    done = await server.call("POST", "orchestrator/bridge/done", json=report)
    assert done == {"flush": 1, "accepted": True}
    assert await asyncio.wait_for(flushing, 10) == {
        "flush": 1,
        "pages": 1,
        "reported": 1,
        "saved": ["a.ipynb"],
        "failed": [],
    }
    assert await server.last_activity() == before

    await server.call("GET", "api/contents", params={"content": "0"})
    assert await server.last_activity() > before


async def test_a_flush_with_no_page_answers_at_once(server: ServerUnderTest) -> None:
    started = time.monotonic()
    outcome = await server.call("POST", "orchestrator/bridge/flush", params={"timeout": "30"})
    assert outcome == {"flush": 1, "pages": 0, "reported": 0, "saved": [], "failed": []}
    assert time.monotonic() - started < 5


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "wait", {}, "'page'"),
    ("GET", "wait", {"params": {"page": PAGE, "after": "-1"}}, "'after'"),
    ("POST", "flush", {"params": {"timeout": "31"}}, "'timeout'"),
    ("POST", "done", {"data": b"{not json"}, "Invalid JSON"),
    ("POST", "done", {"json": {"page": PAGE, "flush": "1"}}, "flush"),
    ("POST", "done", {"json": {"page": PAGE, "flush": 9}}, "never requested"),
]


async def test_bad_or_unauthenticated_requests_are_refused(
    server: ServerUnderTest, http: aiohttp.ClientSession
) -> None:
    for method, path, kwargs, named in BAD_REQUESTS:
        body = await server.call(method, f"orchestrator/bridge/{path}", expect=400, **kwargs)
        assert named in body["message"], (method, path, body)

    url = f"{server.base}/orchestrator/bridge/flush"
    async with http.post(url, allow_redirects=False) as response:
        assert response.status in (302, 401, 403)
