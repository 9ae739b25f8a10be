"""The server lifecycle against the real stack: progress of a cold open in a burst over
the spawn limit, and idle culling that the orchestrator's own calls do not prevent.

Both watch the gateway's event stream (SSE) of an app of their own, and every
lifecycle event they observe is validated against its checked-in JSON Schema.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import jsonschema
import pytest

from devstack.stack import LocalStack
from schemas.export import event_schema_name, load_schema
from schemas.workspaces import workspace_name
from tests.integration.gateway_client import bearer, post_command

IDLE_TIMEOUT = 10
GRACE = 3
CULL_INTERVAL = 4  # the session stack's ORCH_CULL_INTERVAL_SECONDS


def assert_valid(event: dict[str, Any]) -> None:
    """``event`` validates against the checked-in JSON Schema of its type."""
    schema = load_schema(event_schema_name(event["type"]))
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(event)


def kind_of(event: dict[str, Any]) -> str:
    """``server.ready`` of ``io.github.notebook-orchestrator.server.ready.v1``."""
    return ".".join(str(event["type"]).split(".")[-3:-1])


async def events_of(stream: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """Every event of a server-sent-event stream, as it arrives."""
    while line := await stream.content.readline():
        if line.startswith(b"data: "):
            yield json.loads(line[len(b"data: ") :])


async def open_stream(gw: aiohttp.ClientSession, key: str, types: str) -> aiohttp.ClientResponse:
    """The app's event stream of ``types``, subscribed once this returns."""
    stream = await gw.get(
        "/v1/events",
        params={"types": types},
        headers=bearer(key),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
    )
    assert stream.status == 200
    assert await stream.content.readline() == b": connected\n"
    return stream


async def run(gw: aiohttp.ClientSession, key: str, command: dict[str, Any]) -> dict[str, Any]:
    """Send ``command`` and long-poll it to its end."""
    status, _, view = await post_command(gw, key, command)
    assert status == 202, view
    while view["status"] in ("accepted", "running"):
        async with gw.get(
            f"/v1/commands/{view['id']}", params={"wait": "30"}, headers=bearer(key)
        ) as resp:
            view = await resp.json()
    return view


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:6]


async def test_a_cold_open_in_a_burst_shows_its_progress_over_sse(
    stack: LocalStack, tag: str
) -> None:
    key = await asyncio.to_thread(stack.issue_app_key, f"lifecycle-{tag}")
    burst = stack.options.spawn_concurrency + 2  # over the spawn limit
    users = [f"burst-{tag}-{i}" for i in range(burst)]
    seen: dict[str, list[dict[str, Any]]] = {}
    ready: set[str] = set()
    async with aiohttp.ClientSession(base_url=stack.gateway_url) as gw:
        stream = await open_stream(
            gw, key, "command.progressed,command.succeeded,server.starting,server.ready"
        )
        try:
            posted = await asyncio.gather(
                *(
                    post_command(gw, key, {"type": "open", "user": u, "path": "p.ipynb"})
                    for u in users
                )
            )
            ids = {view["id"] for status, _, view in posted if status == 202}
            assert len(ids) == burst
            succeeded: set[str] = set()
            async with asyncio.timeout(240):
                async for event in events_of(stream):
                    assert_valid(event)
                    data = event["data"]
                    if kind_of(event) == "command.progressed":
                        seen.setdefault(data["command_id"], []).append(data["progress"])
                    elif kind_of(event) == "server.ready":
                        ready.add(data["user"])
                    elif kind_of(event) == "command.succeeded":
                        succeeded.add(data["command_id"])
                        if ids <= succeeded:
                            break
        finally:
            stream.close()
    assert ready == set(users)  # each cold open announced its server ready
    waited = [p for steps in seen.values() for p in steps if p["phase"] == "waiting_for_spawn_slot"]
    assert waited, "no open waited for a spawn slot in a burst over the limit"
    assert all(p["position"] >= 1 for p in waited)
    climbing = 0  # cold spawns whose percentage rose (one the Hub finished before its
    # progress stream was read shows only the request's 0 %: possible under load)
    for command_id in ids:
        steps = seen.get(command_id, [])
        phases = [p["phase"] for p in steps]
        assert "spawning" in phases and phases[-1] == "writing", phases
        percents = [p["percent"] for p in steps if p["phase"] == "spawning"]
        assert percents == sorted(percents), percents
        climbing += len(set(percents)) >= 2
    assert climbing >= burst // 2, seen
    async with aiohttp.ClientSession(base_url=stack.gateway_url) as gw:
        any_id = next(iter(ids))
        async with gw.get(f"/v1/commands/{any_id}", headers=bearer(key)) as resp:
            view = await resp.json()
    assert view["status"] == "succeeded" and view["progress"]["phase"] == "done"


async def _server_activity(
    http: aiohttp.ClientSession, stack: LocalStack, ws: str, **q: str
) -> Any:
    """``GET /api/status`` of the workspace's server with the orchestrator's token."""
    async with http.get(
        f"{stack.hub.url}/user/{ws}/api/status",
        params=q,
        headers={"Authorization": f"token {stack.service_token}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return datetime.fromisoformat((await resp.json())["last_activity"].replace("Z", "+00:00"))


async def test_the_orchestrators_calls_do_not_count_as_activity_and_idle_servers_are_culled(
    stack: LocalStack, tag: str, http: aiohttp.ClientSession
) -> None:
    app = f"cull-{tag}"
    key = await asyncio.to_thread(stack.issue_app_key, app)
    await asyncio.to_thread(
        stack.orchestrator_cli,
        "servers",
        "policy",
        app,
        "--idle-timeout",
        str(IDLE_TIMEOUT),
        "--grace",
        str(GRACE),
    )
    user = f"idle-{tag}"
    ws = workspace_name(app, user)
    async with aiohttp.ClientSession(base_url=stack.gateway_url) as gw:
        stream = await open_stream(
            gw, key, "server.ready,server.cull_scheduled,server.stopping,server.stopped"
        )
        try:
            opened = await run(gw, key, {"type": "open", "user": user, "path": "idle.ipynb"})
            assert opened["status"] == "succeeded", opened
            ready_at = time.monotonic()

            # The orchestrator's own calls leave the server's last activity alone...
            before = await _server_activity(http, stack, ws, no_track_activity="1")
            saved = await run(gw, key, {"type": "save", "user": user, "path": "idle.ipynb"})
            assert saved["status"] == "succeeded", saved
            assert await _server_activity(http, stack, ws, no_track_activity="1") == before
            # ...while any request without no_track_activity counts (what a page does).
            async with http.get(
                f"{stack.hub.url}/user/{ws}/api/contents",
                params={"content": "0"},
                headers={"Authorization": f"token {stack.service_token}"},
            ) as resp:
                assert resp.status == 200
            touched = await _server_activity(http, stack, ws, no_track_activity="1")
            assert touched > before
            touched_at = time.monotonic()

            # Regular orchestrator calls from here on: saves, status, notebook lists.
            async def keep_calling() -> None:
                while True:
                    await run(gw, key, {"type": "save", "user": user, "path": "idle.ipynb"})
                    async with gw.get(f"/v1/users/{user}/notebooks", headers=bearer(key)):
                        pass
                    await asyncio.sleep(3)

            caller = asyncio.create_task(keep_calling())
            events: list[dict[str, Any]] = []
            try:
                async with asyncio.timeout(IDLE_TIMEOUT + GRACE + 60):
                    async for event in events_of(stream):
                        if event["data"]["user"] != user:
                            continue
                        assert_valid(event)
                        events.append(event)
                        if kind_of(event) == "server.cull_scheduled":
                            scheduled_at = time.monotonic()
                        if kind_of(event) == "server.stopped":
                            stopped_at = time.monotonic()
                            break
            finally:
                caller.cancel()
        finally:
            stream.close()
    kinds = [kind_of(e) for e in events]
    assert kinds == [
        "server.ready",  # the open started it
        "server.cull_scheduled",
        "server.stopping",
        "server.stopped",
    ], kinds
    _, scheduled, _, stopped = (e["data"] for e in events)
    assert scheduled["reason"] == "idle" and stopped["reason"] == "idle"
    # idle for the timeout since the last counted activity, give or take a culler pass
    idle_for = scheduled_at - touched_at
    assert IDLE_TIMEOUT - 1 <= idle_for <= IDLE_TIMEOUT + 3 * CULL_INTERVAL + 5, idle_for
    assert GRACE - 1 <= stopped_at - scheduled_at <= GRACE + 3 * CULL_INTERVAL + 15
    assert ready_at < scheduled_at
    state = await _hub_user(http, stack, ws)
    assert not (state.get("servers") or {}), state
    listed = json.loads(await asyncio.to_thread(stack.orchestrator_cli, "servers", "--json"))
    assert ws not in {row["workspace"] for row in listed}
    summary = json.loads(
        await asyncio.to_thread(stack.orchestrator_cli, "servers", "--json", "summary")
    )
    (mine,) = [row for row in summary if row["app"] == app]
    assert (mine["running"], mine["culled_idle"], mine["culls_scheduled"]) == (0, 1, 0), mine


async def _hub_user(http: aiohttp.ClientSession, stack: LocalStack, ws: str) -> Any:
    async with http.get(
        f"{stack.hub.api_url}/users/{ws}",
        headers={"Authorization": f"token {stack.service_token}"},
    ) as resp:
        return await resp.json()


async def test_a_server_stopped_outside_the_orchestrator_is_announced(
    stack: LocalStack, tag: str, http: aiohttp.ClientSession
) -> None:
    app = f"outside-{tag}"
    key = await asyncio.to_thread(stack.issue_app_key, app)
    user = f"gone-{tag}"
    ws = workspace_name(app, user)
    async with aiohttp.ClientSession(base_url=stack.gateway_url) as gw:
        stream = await open_stream(gw, key, "server.ready,server.stopped")
        try:
            started = await run(gw, key, {"type": "start-server", "user": user})
            assert started["status"] == "succeeded", started
            # Someone stops it at the Hub, not through the orchestrator.
            async with http.delete(
                f"{stack.hub.api_url}/users/{ws}/server",
                headers={"Authorization": f"token {stack.service_token}"},
            ) as resp:
                assert resp.status in (202, 204), await resp.text()
            kinds = []
            async with asyncio.timeout(60):
                async for event in events_of(stream):
                    if event["data"]["user"] != user:
                        continue
                    assert_valid(event)
                    kinds.append(kind_of(event))
                    if kind_of(event) == "server.stopped":
                        assert event["data"]["reason"] == "hub"
                        assert event["appid"] == app
                        break
        finally:
            stream.close()
    assert kinds == ["server.ready", "server.stopped"]
