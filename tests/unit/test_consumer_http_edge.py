"""Status mapping, Retry-After, the in-process retry policy, retry-queue delays, UserLocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consumers.errors import (
    HubForbidden,
    NotFoundError,
    PermanentError,
    TransientError,
)
from consumers.http_edge import (
    JitteredBackoff,
    RetryPolicy,
    error_for_status,
    parse_retry_after,
    raise_for_status,
    retry_delay_bounds,
)
from consumers.upstream_detail import quiet_detail
from consumers.user_locks import UserLocks
from schemas.topology import RETRY_DELAYS_SECONDS, retry_delay_for


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
        (403, HubForbidden),
        (404, NotFoundError),
        (400, PermanentError),
        (409, PermanentError),
        (422, PermanentError),
    ],
)
def test_status_maps_to_a_typed_error(status: int, kind: type[Exception]) -> None:
    error = error_for_status(status, f"HTTP {status}")
    assert type(error) is kind


def test_forbidden_says_which_setting_to_check() -> None:
    assert "scopes" in str(error_for_status(403, "POST /users/{name}: HTTP 403"))


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30)), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30)), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def _serve(handler: Callable[[web.Request], Awaitable[web.Response]]) -> TestClient:
    app = web.Application()
    app.router.add_get("/", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_raise_for_status_reads_the_hub_message_and_retry_after() -> None:
    async def busy(_request: web.Request) -> web.Response:
        return web.json_response(
            {"status": 429, "message": "Too many users trying to log in right now."},
            status=429,
            headers={"Retry-After": "42"},
        )

    client = await _serve(busy)
    try:
        async with client.get("/") as response:
            with pytest.raises(TransientError) as caught:
                await raise_for_status(response, "POST /users/{name}/server")
    finally:
        await client.close()
    assert caught.value.retry_after == 42.0
    assert "HTTP 429: Too many users" in caught.value.message


async def test_raise_for_status_with_a_non_json_body() -> None:
    async def broken(_request: web.Request) -> web.Response:
        return web.Response(text="<html>bad gateway</html>", status=400)

    client = await _serve(broken)
    try:
        async with client.get("/") as response:
            with pytest.raises(PermanentError, match="HTTP 400: <html>bad gateway"):
                await raise_for_status(response, "GET /")
    finally:
        await client.close()


def test_backoff_bounds_grow_are_capped_and_respect_retry_after() -> None:
    assert retry_delay_bounds(1, None) == (0.0, 0.25)
    assert retry_delay_bounds(3, None) == (0.0, 1.0)
    assert retry_delay_bounds(20, None) == (0.0, 8.0)
    assert retry_delay_bounds(1, 5.0) == (5.0, 5.0)
    assert retry_delay_bounds(6, 5.0) == (5.0, 8.0)


def test_jittered_backoff_draws_inside_the_bounds() -> None:
    seen: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        seen.append((low, high))
        return high

    backoff = JitteredBackoff(draw=draw)

    class Outcome:
        def exception(self) -> BaseException:
            return TransientError("503", retry_after=3.0)

    class State:
        attempt_number = 2
        outcome = Outcome()

    assert backoff(State()) == 3.0  # type: ignore[arg-type]
    assert seen == [(3.0, 3.0)]


async def test_policy_retries_transient_errors_honouring_retry_after() -> None:
    calls: list[float] = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise TransientError("429", retry_after=0.4)
        if len(calls) == 2:
            raise aiohttp.ServerDisconnectedError()
        return "ok"

    assert await RetryPolicy(max_wait=0.05).call(flaky) == "ok"
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.4


async def test_policy_does_not_retry_permanent_errors() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("HTTP 400")

    with pytest.raises(PermanentError):
        await RetryPolicy().call(refused)
    assert calls == 1


async def test_policy_gives_up_after_its_attempts() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("HTTP 503")

    with pytest.raises(TransientError):
        await RetryPolicy(attempts=3, max_wait=0.01).call(down)
    assert calls == 3


def test_retry_queue_delays_then_dead_letter() -> None:
    assert [retry_delay_for(n) for n in range(1, len(RETRY_DELAYS_SECONDS) + 2)] == [
        *RETRY_DELAYS_SECONDS,
        None,
    ]
    assert retry_delay_for(0) is None
    assert list(RETRY_DELAYS_SECONDS) == sorted(RETRY_DELAYS_SECONDS)


async def test_user_locks_keep_arrival_order_per_user_and_let_users_overlap() -> None:
    locks = UserLocks()
    log: list[str] = []
    ann_started = asyncio.Event()
    release_ann = asyncio.Event()

    async def work(user: str, name: str, hold: asyncio.Event | None = None) -> None:
        async with locks.hold(user):
            log.append(f"start {name}")
            if hold is not None:
                ann_started.set()
                await hold.wait()
            await asyncio.sleep(0)
            log.append(f"end {name}")

    tasks = [asyncio.create_task(work("ann", "a1", release_ann))]
    tasks += [asyncio.create_task(work("ann", f"a{i}")) for i in range(2, 6)]
    await ann_started.wait()
    await work("bob", "b1")  # another user is not blocked by ann's held lock
    release_ann.set()
    await asyncio.gather(*tasks)

    ann = [entry for entry in log if " a" in entry]
    assert ann == [f"{what} a{i}" for i in range(1, 6) for what in ("start", "end")]
    assert log.index("end b1") < log.index("end a1")
    assert locks._locks == {}  # nothing kept once nobody waits


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("Permission denied: /srv/jupyterhub/home/alice/a.ipynb", "Permission denied: <path>"),
        ("No such file or directory: work/a.ipynb", "No such file or directory: work/a.ipynb"),
        (
            "Cannot connect to host 127.0.0.1:8081 ssl:default",
            "Cannot connect to host <host> ssl:default",
        ),
        ("redirected to http://10.0.0.5:8000/hub/login?next=x", "redirected to <url>"),
        ("token 0123456789abcdef0123456789abcdef rejected", "token <secret> rejected"),
    ],
)
def test_upstream_error_text_loses_paths_hosts_and_tokens(upstream: str, expected: str) -> None:
    assert quiet_detail(upstream) == expected
