"""JupyterHub REST API client: users and servers, with the Hub's status codes mapped.

One aiohttp session, ``Authorization: token …``, a semaphore on concurrent Hub calls
and a separate, smaller one on concurrent spawns so that a burst of users queues
here instead of hitting the Hub's ``concurrent_spawn_limit`` (whose 429 asks for a
30-60 s pause).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import structlog

from consumers.errors import NotFoundError, PermanentError, SpawnFailed, TransientError
from consumers.http_edge import JsonApi, RetryPolicy, as_transient, parse_time
from consumers.lifecycle import QuietObserver
from consumers.ports import RunningServer, ServerState, SpawnObserver
from runtime.metrics import SPAWN_SECONDS

PING_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)
BUSY_PAUSE_SECONDS = 0.5  # the Hub offers no event for "stop finished" or "spawn registered"
MAX_SPAWN_REQUESTS = 3
STOP_WAIT_SECONDS = 60.0


USERS_PAGE = 200
OnWait = Callable[[int], Awaitable[None]]


class SpawnLimit(Protocol):
    """Limits concurrent spawns; the consumers share one across processes (the DB)."""

    def hold(self, on_wait: OnWait | None = None) -> AbstractAsyncContextManager[None]:
        """Wait for a free spawn slot and hold it for the body; ``on_wait`` hears the
        place in line while no slot is free."""
        ...


class LocalSpawnLimit:
    """A :class:`SpawnLimit` for one process (an asyncio semaphore)."""

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def hold(self, on_wait: OnWait | None = None) -> AsyncIterator[None]:
        """Hold one of ``limit`` slots of this process."""
        if self._semaphore.locked() and on_wait is not None:
            await on_wait(self._waiting + 1)
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._semaphore.release()


def is_busy(body: Any) -> bool:
    """True if a 400 from ``POST .../server`` means "already running" or "pending"."""
    message = str((body or {}).get("message", "")).lower()
    return "already running" in message or "pending" in message


class HubClient:
    """Calls the Hub API as the orchestrator service; idempotent, convergent operations.

    ``calls_made`` counts Hub API requests (progress streams included).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        token: str,
        *,
        concurrency: int = 16,
        spawn_concurrency: int = 4,
        spawn_limit: SpawnLimit | None = None,
        spawn_timeout: float = 180.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api = JsonApi(
            session,
            api_url,
            token,
            retry=retry or RetryPolicy(target="hub"),
            concurrency=concurrency,
        )
        self._spawns = spawn_limit or LocalSpawnLimit(spawn_concurrency)
        self._spawn_timeout = spawn_timeout

    @property
    def calls_made(self) -> int:
        """Hub API requests made so far (progress streams and retried attempts included)."""
        return self._api.calls_made

    async def ping(self) -> None:
        """One unretried ``GET`` of the API root; ``TransientError`` unless the Hub
        answers 200 within ``PING_TIMEOUT_SECONDS``."""
        timeout = PING_TIMEOUT_SECONDS
        try:
            async with asyncio.timeout(timeout):
                await self._api.request("GET", "/", endpoint="/", ok=(200,), retried=False)
        except TimeoutError:
            raise TransientError(f"the Hub did not answer within {timeout:.0f} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientError(f"the Hub is unreachable: {type(exc).__name__}") from None

    async def server_state(self, user: str) -> ServerState:
        """One call: does the user exist, and is the default server ready or pending."""
        try:
            _, model = await self._api.request(
                "GET", f"/users/{quote(user)}", endpoint="/users/{name}", ok=(200,)
            )
        except NotFoundError:
            return ServerState(False, False, None, None)
        server = (model.get("servers") or {}).get("")
        if not server:
            return ServerState(True, False, model.get("pending"), None)
        return ServerState(True, bool(server.get("ready")), server.get("pending"), server["url"])

    async def ensure_user(self, user: str) -> bool:
        """Create the user if missing; True if this call created it (201), False on 409."""
        status, _ = await self._api.request(
            "POST", f"/users/{quote(user)}", endpoint="/users/{name}", ok=(201, 409)
        )
        return status == 201

    async def running_servers(self) -> list[RunningServer]:
        """Every user's default server that is running or pending (``GET /users``
        with ``state=active``, page by page)."""
        servers: list[RunningServer] = []
        offset = 0
        while True:
            _, page = await self._api.request(
                "GET",
                "/users",
                endpoint="/users",
                ok=(200,),
                params={"state": "active", "offset": str(offset), "limit": str(USERS_PAGE)},
            )
            items = page.get("items", []) if isinstance(page, dict) else page or []
            for model in items:
                server = (model.get("servers") or {}).get("")
                if server:
                    servers.append(
                        RunningServer(
                            user=model["name"],
                            ready=bool(server.get("ready")),
                            pending=server.get("pending"),
                            started=parse_time(server.get("started")),
                        )
                    )
            if len(items) < USERS_PAGE:
                return servers
            offset += len(items)

    async def start_server(
        self,
        user: str,
        known: ServerState | None = None,
        observer: SpawnObserver | None = None,
    ) -> str:
        """Start the default server unless running, wait until ready, return its URL.

        Converges from any state: ready → done (no call at all when ``known`` says
        ready); spawn pending (e.g. left by a consumer that died) → follow the progress
        stream; stop pending → wait and start again; stopped → POST (201 ready, 202
        pending, 400 already running or pending). 429 (the Hub's spawn limit) is
        transient and waited out after ``Retry-After``. At most ``spawn_concurrency``
        spawns run at once from this client; the rest queue here. A spawn the Hub
        reports as failed raises :class:`SpawnFailed`; not ready within
        ``spawn_timeout`` raises :class:`TransientError`. ``observer`` hears the wait
        for a slot, the start request, the Hub's progress, and ready or failed.
        """
        if known is not None and known.ready and known.url is not None:
            return known.url
        watch = observer or QuietObserver()
        async with self._spawns.hold(watch.waiting_for_slot):
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._spawn_timeout):
                    url, spawned = await self._converge_running(user, watch)
            except TimeoutError as exc:
                raise TransientError(
                    f"server of {user} not ready after {self._spawn_timeout:.0f} s"
                ) from exc
            except SpawnFailed as exc:
                await watch.spawn_failed(exc.message)
                raise
        seconds: float | None = None
        if spawned:
            seconds = time.monotonic() - started
            SPAWN_SECONDS.observe(seconds)
            log.info("server ready", user=user, seconds=round(seconds, 2))
        await watch.ready(url, seconds)
        return url

    async def _converge_running(self, user: str, watch: SpawnObserver) -> tuple[str, bool]:
        requests = 0
        waited = False
        while True:
            state = await self.server_state(user)
            if state.ready and state.url is not None:
                return state.url, waited
            waited = True
            if state.pending == "spawn":
                await self._follow_progress(user, watch)
                continue
            if state.pending is not None:
                await asyncio.sleep(BUSY_PAUSE_SECONDS)  # stopping
                continue
            if requests >= MAX_SPAWN_REQUESTS:
                raise SpawnFailed(f"server of {user} did not start after {requests} requests")
            requests += 1
            await watch.starting()
            status, body = await self._api.request(
                "POST",
                f"/users/{quote(user)}/server",
                endpoint="/users/{name}/server",
                ok=(201, 202, 400),
            )
            if status == 202:
                await self._follow_progress(user, watch)
            elif status == 400:
                if not is_busy(body):
                    raise PermanentError(f"Hub refused to start the server of {user}: {body}")
                await asyncio.sleep(BUSY_PAUSE_SECONDS)

    async def _follow_progress(self, user: str, watch: SpawnObserver) -> None:
        """Read the progress event stream until it ends; raise SpawnFailed on ``failed``.

        A broken stream or "not starting" (400) just returns: the caller re-reads the
        server state, which is the truth either way.
        """
        try:
            await as_transient(lambda: self._read_progress(user, watch))
        except TransientError as exc:
            log.info("progress stream ended early", user=user, error=exc.message[:200])
        except PermanentError as exc:
            if isinstance(exc, SpawnFailed):
                raise
            log.info("no progress to follow", user=user, error=exc.message[:200])

    async def _read_progress(self, user: str, watch: SpawnObserver) -> None:
        async with self._api.stream(
            f"/users/{quote(user)}/server/progress",
            endpoint="/users/{name}/server/progress",
            what="GET progress",
        ) as body:
            async for raw in body:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if not event.get("failed"):
                    percent = event.get("progress")
                    await watch.spawning(
                        int(percent) if isinstance(percent, int | float) else None,
                        str(event["message"]) if event.get("message") else None,
                    )
                if event.get("failed"):
                    raise SpawnFailed(
                        f"server of {user} failed to start: {event.get('message', '')}"
                    )

    async def stop_server(self, user: str) -> bool:
        """Stop the default server and wait until it is gone; False if none was running."""
        state = await self.server_state(user)
        if not state.user_exists or not (state.ready or state.pending):
            return False
        status, _ = await self._api.request(
            "DELETE",
            f"/users/{quote(user)}/server",
            endpoint="/users/{name}/server",
            ok=(202, 204, 400),
        )
        if status == 202:
            try:
                async with asyncio.timeout(STOP_WAIT_SECONDS):
                    while True:  # polled: the Hub has no event for "stopped"
                        if (await self.server_state(user)).pending != "stop":
                            break
                        await asyncio.sleep(BUSY_PAUSE_SECONDS)
            except TimeoutError as exc:
                raise TransientError(f"server of {user} still stopping") from exc
        return True
