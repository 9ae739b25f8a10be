"""The I/O edge shared by the Hub and contents clients: status mapping and retries.

Only transient failures are retried, with jittered exponential backoff, bounded in
attempts and time, and never sooner than a server's ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from consumers.errors import HubForbidden, NotFoundError, PermanentError, TransientError

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


async def raise_for_status(response: aiohttp.ClientResponse, what: str) -> None:
    """Map an error response to a typed error (the body is read for its message)."""
    if response.status < 400:
        return
    try:
        body = await response.json(content_type=None)
        detail = str(body.get("message") or body.get("reason") or body)[:300]
    except Exception:
        detail = (await response.text())[:300]
    message = f"{what}: HTTP {response.status}: {detail}"
    if response.status in TRANSIENT_STATUSES:
        raise TransientError(message, retry_after=_retry_after(response.headers))
    if response.status == 403:
        raise HubForbidden(f"{message} (check the orchestrator service's role scopes)")
    if response.status == 404:
        raise NotFoundError(message)
    raise PermanentError(message)


class _WaitHonouringRetryAfter:
    def __init__(self, base: Any) -> None:
        self._base = base

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._base(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return max(backoff, exc.retry_after)
        return backoff


class RetryPolicy:
    """How hard the clients retry transient errors in-process."""

    def __init__(
        self, *, attempts: int = 6, max_seconds: float = 60.0, max_wait: float = 8.0
    ) -> None:
        self.attempts = attempts
        self.max_seconds = max_seconds
        self.max_wait = max_wait

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn``, retrying TransientError; connection errors become TransientError."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            wait=_WaitHonouringRetryAfter(
                wait_random_exponential(multiplier=0.25, max=self.max_wait)
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await _as_transient(fn)
        raise AssertionError("unreachable")


async def _as_transient(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
        raise TransientError(f"connection problem: {type(exc).__name__}: {exc}") from exc
