"""JupyterHub REST API client: users and servers, with the Hub's status codes mapped.

One aiohttp session, ``Authorization: token …``, a semaphore on concurrent Hub calls
and a separate, smaller one on concurrent spawns so that a burst of users queues
here instead of hitting the Hub's ``concurrent_spawn_limit``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from consumers.errors import NotFoundError, PermanentError, SpawnFailed, TransientError
from consumers.http_edge import RetryPolicy, raise_for_status

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ServerState:
    """The default server of a user as the Hub reports it."""

    user_exists: bool
    ready: bool
    pending: str | None
    url: str | None


def _is_busy(body: Any) -> bool:
    message = str((body or {}).get("message", "")).lower()
    return "already running" in message or "pending" in message


class HubClient:
    """Calls the Hub API as the orchestrator service; idempotent, convergent operations."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        token: str,
        *,
        concurrency: int = 16,
        spawn_concurrency: int = 4,
        spawn_timeout: float = 180.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        self._api = api_url.rstrip("/")
        self._headers = {"Authorization": f"token {token}"}
        self._calls = asyncio.Semaphore(concurrency)
        self._spawns = asyncio.Semaphore(spawn_concurrency)
        self._spawn_timeout = spawn_timeout
        self._retry = retry or RetryPolicy()
        self.calls_made = 0

    async def _request(
        self, method: str, path: str, *, ok: tuple[int, ...], json_body: Any = None
    ) -> tuple[int, Any]:
        async def once() -> tuple[int, Any]:
            async with self._calls:
                self.calls_made += 1
                async with self._session.request(
                    method, self._api + path, headers=self._headers, json=json_body
                ) as response:
                    if response.status in ok:
                        text = await response.text()
                        return response.status, json.loads(text) if text else None
                    await raise_for_status(response, f"{method} {path}")
                    raise AssertionError("unreachable")

        return await self._retry.call(once)

    async def server_state(self, user: str) -> ServerState:
        """One call: does the user exist, and is the default server ready or pending."""
        try:
            _, model = await self._request("GET", f"/users/{quote(user)}", ok=(200,))
        except NotFoundError:
            return ServerState(False, False, None, None)
        server = (model.get("servers") or {}).get("")
        if not server:
            return ServerState(True, False, model.get("pending"), None)
        return ServerState(True, bool(server.get("ready")), server.get("pending"), server["url"])

    async def ensure_user(self, user: str) -> bool:
        """Create the user if missing; True if this call created it (201), False on 409."""
        status, _ = await self._request("POST", f"/users/{quote(user)}", ok=(201, 409))
        return status == 201

    async def start_server(self, user: str, known: ServerState | None = None) -> str:
        """Start the default server unless running, wait until ready, return its URL.

        Converges from any state: ready → done (no call beyond the state read, or none
        when ``known`` says ready); spawn pending → follow the progress stream; stop
        pending → wait and start again; stopped → POST (201 ready, 202 pending, 400
        already running or pending). 429 (the Hub's spawn limit) is transient and
        retried after ``Retry-After``. Spawns are limited by this client's semaphore.
        """
        if known is not None and known.ready and known.url is not None:
            return known.url
        started = time.monotonic()
        async with self._spawns, asyncio.timeout(self._spawn_timeout):
            while True:
                state = await self.server_state(user)
                if state.ready and state.url is not None:
                    log.info(
                        "server ready", user=user, seconds=round(time.monotonic() - started, 2)
                    )
                    return state.url
                if state.pending == "spawn":
                    await self._follow_progress(user)
                elif state.pending is not None:
                    await asyncio.sleep(0.5)  # stopping: the Hub offers no event for it
                else:
                    status, body = await self._request(
                        "POST", f"/users/{quote(user)}/server", ok=(201, 202, 400)
                    )
                    if status == 202:
                        await self._follow_progress(user)
                    elif status == 400 and not _is_busy(body):
                        raise PermanentError(f"Hub refused to start the server: {body}")

    async def _follow_progress(self, user: str) -> bool:
        """Read the progress event stream; True on ready, raise on failed."""
        url = f"{self._api}/users/{quote(user)}/server/progress"
        try:
            async with self._calls:
                self.calls_made += 1
                async with self._session.get(url, headers=self._headers) as response:
                    if response.status != 200:
                        await raise_for_status(response, "GET progress")
                        return False
                    async for raw in response.content:
                        line = raw.decode().strip()
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        if event.get("ready"):
                            return True
                        if event.get("failed"):
                            raise SpawnFailed(
                                f"server of {user} failed to start: {event.get('message', '')}"
                            )
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransientError(f"progress stream broke: {type(exc).__name__}") from exc
        return False

    async def stop_server(self, user: str) -> None:
        """Stop the default server; absent user or stopped server are success."""
        try:
            await self._request("DELETE", f"/users/{quote(user)}/server", ok=(202, 204, 400))
        except NotFoundError:
            return
