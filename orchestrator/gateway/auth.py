"""App authentication: ``Authorization: Bearer <app key>``, with a short in-process cache.

Key lookups are cached for ``ttl`` seconds (``ORCH_AUTH_CACHE_SECONDS``, default 5)
so that a busy app does not cost one database query per command. The price is that
a revoked key keeps working in a running gateway for at most ``ttl`` seconds after
``orchestrator keys revoke``. Only successful lookups are cached (a new key works at
once); concurrent lookups of one key share a single query. Plain keys are never kept:
the cache is keyed by the key's sha256.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from orchestrator.gateway.context import REQUEST_APP
from runtime.db.apps import AppIdentity, hash_key
from runtime.http_errors import ApiError

# /v1/views/: a signed view code in the path is the credential (views_api)
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi", "/static/", "/docs", "/v1/views/")
DEFAULT_MAX_ENTRIES = 10_000

Lookup = Callable[[str], Awaitable[AppIdentity | None]]


@dataclass(frozen=True)
class _Entry:
    identity: AppIdentity
    expires: float


class AppKeyCache:
    """Resolves app keys to identities through ``lookup``, remembering hits for ``ttl`` s."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[AppIdentity | None]] = {}

    async def identify(self, key: str) -> AppIdentity | None:
        """The app owning ``key`` (unrevoked as of at most ``ttl`` s ago), or None."""
        digest = hash_key(key)
        entry = self._entries.get(digest)
        if entry is not None and entry.expires > self._clock():
            return entry.identity
        lookup = self._inflight.get(digest)
        if lookup is None:
            # A task, so that a caller that goes away does not cancel the others' lookup.
            lookup = asyncio.create_task(self._resolve(digest, key))
            self._inflight[digest] = lookup
            lookup.add_done_callback(lambda _: self._inflight.pop(digest, None))
        return await asyncio.shield(lookup)

    async def _resolve(self, digest: str, key: str) -> AppIdentity | None:
        identity = await self._lookup(key)
        self._remember(digest, identity)
        return identity

    def _remember(self, digest: str, identity: AppIdentity | None) -> None:
        if identity is None:
            self._entries.pop(digest, None)
            return
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            for stale in [d for d, e in self._entries.items() if e.expires <= now]:
                del self._entries[stale]
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest insertion
        self._entries[digest] = _Entry(identity, self._clock() + self._ttl)

    def __len__(self) -> int:
        return len(self._entries)


AUTH = web.AppKey("auth", AppKeyCache)


def _unauthorized(message: str, challenge: str = "Bearer") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``Authorization: Bearer <app key>`` on the API.

    401 when the key is missing, malformed, unknown or revoked (what the caller is);
    403 is left to the handlers (what the app may do). Public paths and unknown
    routes (answered 404/405 by the router) need no key.
    """
    if (
        request.match_info.http_exception is not None
        or request.path == "/"
        or request.path.startswith(PUBLIC_PREFIXES)
    ):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if not header:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <app key>'")
    if scheme.lower() != "bearer" or not key:
        raise _unauthorized("Authorization must use the Bearer scheme with an app key")
    identity = await request.app[AUTH].identify(key)
    if identity is None:
        raise _unauthorized("unknown or revoked app key", 'Bearer error="invalid_token"')
    request[REQUEST_APP] = identity
    structlog.contextvars.bind_contextvars(app=identity.name)
    return await handler(request)
