"""HubClient's spawn convergence against a small in-process stand-in for the Hub API.

The stand-in speaks the Hub's protocol (201/202/400/429 on start, the progress event
stream, ``pending``) so the client's state machine can be driven into each case.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consumers.errors import SpawnFailed
from consumers.hub_client import HubClient
from schemas.events import EventKind, make_event
from schemas.export import event_schema_name, load_schema
from schemas.lifecycle import ServerSpawnFailed


@dataclass
class StandInHub:
    spawn_seconds: float = 0.05
    limit: int = 100
    throttle_first: int = 0
    retry_after: int = 0
    already_running_race: bool = False
    fail_spawns: bool = False
    users: dict[str, dict[str, object]] = field(default_factory=dict)
    done: dict[str, asyncio.Event] = field(default_factory=dict)
    posts: int = 0
    requests: int = 0
    pending_now: int = 0
    pending_max: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hub/api/users/{name}", self.get_user)
        app.router.add_post("/hub/api/users/{name}", self.create_user)
        app.router.add_post("/hub/api/users/{name}/server", self.start)
        app.router.add_get("/hub/api/users/{name}/server/progress", self.progress)
        return app

    async def get_user(self, request: web.Request) -> web.Response:
        self.requests += 1
        user = self.users.get(request.match_info["name"])
        if user is None:
            return web.json_response({"message": "no such user"}, status=404)
        servers = {}
        if user["ready"] or user["pending"]:
            servers[""] = {"ready": user["ready"], "pending": user["pending"], "url": user["url"]}
        return web.json_response({"pending": user["pending"], "servers": servers})

    async def create_user(self, request: web.Request) -> web.Response:
        self.requests += 1
        name = request.match_info["name"]
        if name in self.users:
            return web.json_response({}, status=409)
        self.users[name] = {"ready": False, "pending": None, "url": None}
        return web.json_response({}, status=201)

    async def start(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.posts += 1
        name = request.match_info["name"]
        user = self.users[name]
        if self.already_running_race:
            self.already_running_race = False
            user.update(ready=True, url=f"/user/{name}/")
            return web.json_response({"message": f"{name} is already running"}, status=400)
        if self.throttle_first > 0 or self.pending_now >= self.limit:
            self.throttle_first -= 1
            return web.json_response(
                {"message": "Too many users"},
                status=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        user["pending"] = "spawn"
        self.pending_now += 1
        self.pending_max = max(self.pending_max, self.pending_now)
        self.done[name] = asyncio.Event()
        asyncio.get_running_loop().call_later(self.spawn_seconds, self._finish, name)
        return web.json_response({}, status=202)

    def _finish(self, name: str) -> None:
        user = self.users[name]
        self.pending_now -= 1
        user["pending"] = None
        if not self.fail_spawns:
            user.update(ready=True, url=f"/user/{name}/")
        self.done[name].set()

    async def progress(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        name = request.match_info["name"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"progress": 10}\n\n')
        await self.done[name].wait()
        final = {"ready": True} if self.users[name]["ready"] else {"failed": True}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        return response


@pytest.fixture
async def hub_and_client(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[StandInHub, HubClient]]:
    hub: StandInHub = getattr(request, "param", StandInHub())
    server = TestServer(hub.app())
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        client = HubClient(session, str(server.make_url("/hub/api")), "token", spawn_concurrency=2)
        yield hub, client
    await server.close()


async def _start(hub: StandInHub, client: HubClient, user: str) -> str:
    await client.ensure_user(user)
    return await client.start_server(user, await client.server_state(user))


async def test_202_is_followed_to_ready(hub_and_client: tuple[StandInHub, HubClient]) -> None:
    hub, client = hub_and_client
    assert await _start(hub, client, "ann") == "/user/ann/"
    assert hub.posts == 1


@pytest.mark.parametrize(
    "hub_and_client", [StandInHub(throttle_first=1, retry_after=1)], indirect=True
)
async def test_429_waits_retry_after_then_starts(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    hub, client = hub_and_client
    started = time.monotonic()
    assert await _start(hub, client, "ann") == "/user/ann/"
    assert time.monotonic() - started >= 1.0
    assert hub.posts == 2


@pytest.mark.parametrize("hub_and_client", [StandInHub(already_running_race=True)], indirect=True)
async def test_400_already_running_is_success(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    hub, client = hub_and_client
    assert await _start(hub, client, "ann") == "/user/ann/"
    assert hub.posts == 1


async def test_a_pending_spawn_is_followed_not_started_again(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    hub, client = hub_and_client
    await client.ensure_user("ann")
    hub.users["ann"]["pending"] = "spawn"  # left behind by a consumer that died
    hub.done["ann"] = asyncio.Event()
    hub.pending_now += 1
    asyncio.get_running_loop().call_later(0.1, hub._finish, "ann")
    assert await client.start_server("ann") == "/user/ann/"
    assert hub.posts == 0


@pytest.mark.parametrize("hub_and_client", [StandInHub(fail_spawns=True)], indirect=True)
async def test_a_failed_spawn_is_a_permanent_error(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    hub, client = hub_and_client
    with pytest.raises(SpawnFailed, match="failed to start"):
        await _start(hub, client, "ann")


async def test_a_ready_server_costs_no_call_beyond_the_state_read(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    hub, client = hub_and_client
    await _start(hub, client, "ann")
    before = hub.requests, client.calls_made
    state = await client.server_state("ann")
    assert await client.start_server("ann", state) == "/user/ann/"
    assert (hub.requests - before[0], client.calls_made - before[1]) == (1, 1)


@pytest.mark.parametrize("hub_and_client", [StandInHub(spawn_seconds=0.15)], indirect=True)
async def test_a_burst_queues_under_the_spawn_limit(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    hub, client = hub_and_client
    users = [f"u{i}" for i in range(7)]
    urls = await asyncio.gather(*(_start(hub, client, u) for u in users))
    assert urls == [f"/user/{u}/" for u in users]
    assert hub.pending_max == 2  # spawn_concurrency of the client
    assert hub.posts == len(users)


class RecordingObserver:
    """Remembers what a spawn told it, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []

    async def waiting_for_slot(self, position: int) -> None:
        self.heard.append(("waiting", position))

    async def starting(self) -> None:
        self.heard.append(("starting", None))

    async def spawning(self, percent: int | None, message: str | None) -> None:
        self.heard.append(("spawning", percent))

    async def ready(self, url: str, seconds: float | None) -> None:
        self.heard.append(("ready", url))

    async def spawn_failed(self, reason: str) -> None:
        self.heard.append(("failed", reason))


async def test_the_observer_hears_start_progress_and_ready(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    _, client = hub_and_client
    await client.ensure_user("ann")
    observer = RecordingObserver()
    await client.start_server("ann", await client.server_state("ann"), observer)
    assert observer.heard == [("starting", None), ("spawning", 10), ("ready", "/user/ann/")]


@pytest.mark.parametrize("hub_and_client", [StandInHub(fail_spawns=True)], indirect=True)
async def test_a_failed_spawn_is_announced_with_the_hubs_reason(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    _, client = hub_and_client
    await client.ensure_user("ann")
    observer = RecordingObserver()
    with pytest.raises(SpawnFailed):
        await client.start_server("ann", await client.server_state("ann"), observer)
    kind, reason = observer.heard[-1]
    assert kind == "failed" and "failed to start" in reason
    event = make_event(
        EventKind.SERVER_SPAWN_FAILED,
        ServerSpawnFailed(user="ann", reason=reason, command_id=uuid.uuid4()),
        subject="ann",
        app_id="tests",
    )
    schema = load_schema(event_schema_name(event.type))
    jsonschema.Draft202012Validator(schema).validate(event.model_dump(mode="json"))


async def test_a_burst_over_the_limit_hears_its_place_in_line(
    hub_and_client: tuple[StandInHub, HubClient],
) -> None:
    _, client = hub_and_client  # spawn_concurrency=2
    observers = [RecordingObserver() for _ in range(4)]
    users = [f"w{i}" for i in range(4)]
    for user in users:
        await client.ensure_user(user)
    await asyncio.gather(
        *(client.start_server(u, None, o) for u, o in zip(users, observers, strict=True))
    )
    waited = [o.heard[0] for o in observers if o.heard[0][0] == "waiting"]
    assert sorted(waited) == [("waiting", 1), ("waiting", 2)]
