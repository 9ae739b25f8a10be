"""Long-poll and server-sent events, woken by real events on the real bus.

The first tests play the consumer themselves on the gateway-only stack (commit the
result, publish ``command.succeeded``), so the gateway's part is checked exactly; the
last one runs real consumers and the real Hub (the shared session stack).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from devstack.stack import LocalStack
from orchestrator.gateway.commands_api import RECHECK_SECONDS
from tests.integration.gateway_client import (
    announce_success,
    bearer,
    finish_like_a_consumer,
    post_command,
)

pytest_plugins = ["tests.integration.gateway_fixtures"]


async def _status(gw: aiohttp.ClientSession, key: str, command_id: str, wait: float) -> Any:
    async with gw.get(f"/v1/commands/{command_id}?wait={wait}", headers=bearer(key)) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_long_poll_returns_as_soon_as_the_result_event_arrives(
    gateway_stack: LocalStack, gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    key = gw_keys["a"]
    _, _, command = await post_command(gw, key, {"type": "ensure-user", "user": "lp-user"})
    long_poll = asyncio.create_task(_status(gw, key, command["id"], 20))

    # A short long-poll of the same command proves both that nothing ends it early and
    # (taking a full second) that the long one above is already waiting.
    began = time.monotonic()
    assert (await _status(gw, key, command["id"], 1))["status"] == "accepted"
    assert time.monotonic() - began >= 1.0
    assert not long_poll.done()

    result = {"user": "lp-user", "created": True}
    await finish_like_a_consumer(gateway_stack, command, "app-a", result)
    announced = time.monotonic()
    done = await asyncio.wait_for(long_poll, 30)
    # woken by the event, not by the periodic re-read (every RECHECK_SECONDS)
    assert time.monotonic() - announced < RECHECK_SECONDS - 2
    assert done["status"] == "succeeded" and done["result"] == result
    assert done["attempts"] == 1 and done["finished_at"] is not None


async def _next_event(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next ``data:`` payload of a server-sent-event stream."""
    while True:
        line = await asyncio.wait_for(stream.content.readline(), 30)
        assert line, "stream ended"
        if line.startswith(b"data: "):
            event: dict[str, Any] = json.loads(line[len(b"data: ") :])
            return event


async def _open_stream(gw: aiohttp.ClientSession, key: str, query: str) -> aiohttp.ClientResponse:
    stream = await gw.get(
        f"/v1/events{query}",
        headers={**bearer(key), "X-Correlation-ID": "sse-1"},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
    )
    assert stream.status == 200
    assert stream.content_type == "text/event-stream"
    assert stream.headers["X-Correlation-ID"] == "sse-1"
    assert await stream.content.readline() == b": connected\n"  # subscribed from here on
    return stream


def _fake_command(user: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": "save", "user": user, "correlation_id": "c"}


async def test_event_stream_filters_by_user_and_never_shows_another_apps_events(
    gateway_stack: LocalStack, gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    per_user = await _open_stream(gw, gw_keys["a"], "?user=sse-alice")
    whole_app = await _open_stream(gw, gw_keys["a"], "?types=command.succeeded")
    try:
        theirs = _fake_command("sse-alice")
        other_user = _fake_command("sse-bob")
        mine = _fake_command("sse-alice")
        # published in this order, delivered in this order to the gateway's one queue
        await announce_success(gateway_stack, theirs, "app-b", {"n": 1})
        await announce_success(gateway_stack, other_user, "app-a", {"n": 2})
        await announce_success(gateway_stack, mine, "app-a", {"n": 3})

        first = await _next_event(per_user)
        assert first["data"]["command_id"] == mine["id"]  # app-b's and bob's were skipped
        assert first["appid"] == "app-a" and first["type"].endswith("command.succeeded.v1")

        seen = [await _next_event(whole_app), await _next_event(whole_app)]
        assert [e["data"]["command_id"] for e in seen] == [other_user["id"], mine["id"]]
    finally:
        per_user.close()
        whole_app.close()


async def test_event_stream_refuses_bad_filters(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    for query, status in (
        ("?user=Not-Valid", 422),
        ("?types=command.exploded", 422),
        ("?user=someone", 403),  # the limited app may only watch 'lim-*' users
    ):
        async with gw.get(f"/v1/events{query}", headers=bearer(gw_keys["limited"])) as resp:
            assert resp.status == status, query
            assert (await resp.json())["error"]["message"]


async def test_real_consumers_feed_long_poll_and_stream_of_the_right_app(
    stack: LocalStack, app_key: str, username: str
) -> None:
    other_key = await asyncio.to_thread(stack.issue_app_key, "tests-other-app")
    async with aiohttp.ClientSession(base_url=stack.gateway_url) as gw:
        stream = await _open_stream(gw, app_key, "?types=command.succeeded")
        try:
            _, _, theirs = await post_command(
                gw, other_key, {"type": "ensure-user", "user": f"{username}-x"}
            )
            assert (await _status(gw, other_key, theirs["id"], 30))["status"] == "succeeded"
            status, _, mine = await post_command(
                gw, app_key, {"type": "ensure-user", "user": username}
            )
            assert status == 202
            done = await _status(gw, app_key, mine["id"], 30)
            assert done["status"] == "succeeded", done
            while (event := await _next_event(stream))["data"]["command_id"] != mine["id"]:
                assert event["appid"] == "tests", event  # never the other app's
                assert event["data"]["command_id"] != theirs["id"]
            assert event["data"]["user"] == username
            assert event["correlationid"] == mine["correlation_id"]
        finally:
            stream.close()
