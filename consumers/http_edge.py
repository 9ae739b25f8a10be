"""The I/O edge shared by the Hub and contents clients: requests, status mapping, retries,
timing.

Only transient failures are retried, with jittered exponential backoff, bounded in
attempts and time, and never sooner than a server's ``Retry-After``. Every call is
timed into ``orch_hub_call_seconds`` by endpoint template (never a user name) and status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from consumers.errors import HubForbidden, NotFoundError, PermanentError, TransientError
from consumers.upstream_detail import quiet_detail
from runtime.metrics import HUB_CALL_SECONDS, HUB_RETRIES

log = structlog.get_logger(__name__)
T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_time(raw: Any) -> datetime | None:
    """A timestamp as the Hub and jupyter_server write them (ISO 8601, ``Z`` for UTC);
    None for an empty value."""
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None


def error_for_status(status: int, message: str, retry_after: float | None = None) -> Exception:
    """The typed error for an HTTP error ``status`` (see :mod:`consumers.errors`).

    429 and 5xx are transient (carrying ``Retry-After``), 403 means the service role
    lacks a scope, 404 is not-found, any other 4xx is permanent.
    """
    if status in TRANSIENT_STATUSES:
        return TransientError(message, retry_after=retry_after)
    if status == 403:
        return HubForbidden(f"{message} (check the orchestrator service's role scopes)")
    if status == 404:
        return NotFoundError(message)
    return PermanentError(message)


async def raise_for_status(response: aiohttp.ClientResponse, what: str) -> None:
    """Map an error response to a typed error; the body's message, quieted
    (:func:`~consumers.upstream_detail.quiet_detail`), says what happened."""
    if response.status < 400:
        return
    try:
        body = await response.json(content_type=None)
        detail = str(body.get("message") or body.get("reason") or body)
    except Exception:
        detail = await response.text()
    message = f"{what}: HTTP {response.status}: {quiet_detail(detail)}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    raise error_for_status(response.status, message, retry_after)


@contextlib.asynccontextmanager
async def timed_call(endpoint: str) -> AsyncIterator[Callable[[int], None]]:
    """Time one HTTP call into ``orch_hub_call_seconds``; call the yielded fn with the status.

    ``endpoint`` is a template such as ``POST /users/{name}/server``. A call that ends
    without a status (connection error, timeout) is recorded with status ``error``.
    """
    started = time.perf_counter()
    status: list[str] = ["error"]

    def record(code: int) -> None:
        status[0] = str(code)

    try:
        yield record
    finally:
        HUB_CALL_SECONDS.labels(endpoint, status[0]).observe(time.perf_counter() - started)


def retry_delay_bounds(
    attempt: int, retry_after: float | None, *, multiplier: float = 0.25, max_wait: float = 8.0
) -> tuple[float, float]:
    """Bounds ``(low, high)`` of the wait after failed attempt ``attempt`` (1-based).

    Full jitter below an exponential ceiling ``multiplier * 2**(attempt-1)`` capped at
    ``max_wait``; never less than the server's ``Retry-After`` when it gave one.
    """
    ceiling = min(max_wait, multiplier * 2 ** max(0, attempt - 1))
    floor = retry_after or 0.0
    return floor, max(floor, ceiling)


class JitteredBackoff:
    """A tenacity wait: uniform in :func:`retry_delay_bounds`, honouring ``Retry-After``."""

    def __init__(
        self,
        *,
        multiplier: float = 0.25,
        max_wait: float = 8.0,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.multiplier = multiplier
        self.max_wait = max_wait
        self._draw = draw

    def __call__(self, state: RetryCallState) -> float:
        """Seconds to wait before the next attempt."""
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        low, high = retry_delay_bounds(
            state.attempt_number,
            retry_after,
            multiplier=self.multiplier,
            max_wait=self.max_wait,
        )
        return self._draw(low, high)


class RetryPolicy:
    """How hard the clients retry transient errors in-process (``target`` labels metrics)."""

    def __init__(
        self,
        *,
        attempts: int = 6,
        max_seconds: float = 60.0,
        max_wait: float = 8.0,
        target: str = "hub",
    ) -> None:
        self.attempts = attempts
        self.max_seconds = max_seconds
        self.max_wait = max_wait
        self.target = target

    def _before_sleep(self, state: RetryCallState) -> None:
        HUB_RETRIES.labels(self.target).inc()
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "transient error, retrying",
            target=self.target,
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 2),
            error=str(exc)[:200],
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn``, retrying TransientError; connection errors become TransientError."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            wait=JitteredBackoff(max_wait=self.max_wait),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await as_transient(fn)
        raise AssertionError("unreachable")


async def as_transient(fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()``; connection problems and timeouts become :class:`TransientError`."""
    try:
        return await fn()
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
        raise TransientError(
            f"connection problem: {type(exc).__name__}: {quiet_detail(str(exc))}"
        ) from exc


class JsonApi:
    """A JSON HTTP API called with the orchestrator service's token (``Authorization:
    token …``), below one base URL.

    Every request is timed by its endpoint template and counted in ``calls_made``;
    with ``concurrency`` at most that many requests run at once (streams excepted).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        retry: RetryPolicy,
        concurrency: int | None = None,
        allow_redirects: bool = True,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"token {token}"}
        self._retry = retry
        self._calls: AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext() if concurrency is None else asyncio.Semaphore(concurrency)
        )
        self._allow_redirects = allow_redirects
        self.calls_made = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        ok: tuple[int, ...],
        what: str | None = None,
        body: Any = None,
        params: dict[str, str] | None = None,
        retried: bool = True,
    ) -> tuple[int, Any]:
        """``method`` on ``path`` with ``body`` as JSON: the status and the decoded body
        (None if empty) when the status is in ``ok``, else the status's typed error.

        Transient errors are retried per the retry policy (unless ``retried`` is False).
        ``endpoint`` is the path's template for metrics (never a user name); ``what``
        names the call in error messages (``"{method} {endpoint}"`` unless given).
        """

        async def once() -> tuple[int, Any]:
            async with self._calls, timed_call(f"{method} {endpoint}") as record:
                self.calls_made += 1
                async with self._session.request(
                    method,
                    self._base + path,
                    headers=self._headers,
                    json=body,
                    params=params,
                    allow_redirects=self._allow_redirects,
                ) as response:
                    record(response.status)
                    if response.status in ok:
                        text = await response.text()
                        return response.status, json.loads(text) if text else None
                    await raise_for_status(response, what or f"{method} {endpoint}")
                    raise AssertionError("unreachable")

        return await self._retry.call(once) if retried else await once()

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, endpoint: str, what: str
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """GET ``path`` and yield its body to read as it arrives; an error status raises
        its typed error.

        Neither retried nor held to ``concurrency``: a stream lasts as long as what it
        reports (a spawn), and the caller decides what a broken one means.
        """
        self.calls_made += 1
        async with (
            timed_call(f"GET {endpoint}") as record,
            self._session.get(self._base + path, headers=self._headers) as response,
        ):
            record(response.status)
            await raise_for_status(response, what)
            yield response.content
