"""App key cache: hits skip the database, revocation shows within the TTL."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.gateway.auth import AppKeyCache
from runtime.db.apps import AppIdentity

APP = AppIdentity("app-a", None, None)


class FakeKeys:
    """In-memory key table that counts lookups (the port AppKeyCache depends on)."""

    def __init__(self) -> None:
        self.keys: dict[str, AppIdentity] = {"good": APP}
        self.lookups = 0
        self.release = asyncio.Event()
        self.release.set()

    async def lookup(self, key: str) -> AppIdentity | None:
        self.lookups += 1
        await self.release.wait()
        return self.keys.get(key)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_hits_within_ttl_do_not_query_again(keys: FakeKeys, clock: Clock) -> None:
    cache = AppKeyCache(keys.lookup, ttl=5, clock=clock)
    for _ in range(100):
        assert await cache.identify("good") == APP
    assert keys.lookups == 1


async def test_revocation_takes_effect_once_the_ttl_passed(keys: FakeKeys, clock: Clock) -> None:
    cache = AppKeyCache(keys.lookup, ttl=5, clock=clock)
    assert await cache.identify("good") == APP
    del keys.keys["good"]  # revoked in the database
    clock.now += 4.9
    assert await cache.identify("good") == APP  # still cached: within the documented TTL
    clock.now += 0.2
    assert await cache.identify("good") is None
    assert await cache.identify("good") is None
    assert keys.lookups == 3  # failures are not cached


async def test_unknown_keys_are_not_cached_so_new_keys_work_at_once(
    keys: FakeKeys, clock: Clock
) -> None:
    cache = AppKeyCache(keys.lookup, ttl=5, clock=clock)
    assert await cache.identify("new") is None
    keys.keys["new"] = APP  # issued right after
    assert await cache.identify("new") == APP


async def test_concurrent_misses_share_one_lookup(keys: FakeKeys, clock: Clock) -> None:
    cache = AppKeyCache(keys.lookup, ttl=5, clock=clock)
    keys.release.clear()
    callers = [asyncio.create_task(cache.identify("good")) for _ in range(50)]
    await asyncio.sleep(0)
    keys.release.set()
    assert await asyncio.gather(*callers) == [APP] * 50
    assert keys.lookups == 1


async def test_a_cancelled_caller_does_not_cancel_the_others(keys: FakeKeys, clock: Clock) -> None:
    cache = AppKeyCache(keys.lookup, ttl=5, clock=clock)
    keys.release.clear()
    first = asyncio.create_task(cache.identify("good"))
    second = asyncio.create_task(cache.identify("good"))
    await asyncio.sleep(0)
    first.cancel()
    keys.release.set()
    assert await second == APP


async def test_size_is_bounded(keys: FakeKeys, clock: Clock) -> None:
    cache = AppKeyCache(keys.lookup, ttl=5, max_entries=3, clock=clock)
    for i in range(10):
        keys.keys[f"k{i}"] = APP
        await cache.identify(f"k{i}")
    assert len(cache) == 3
