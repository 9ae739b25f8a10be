"""The spawn limit shared by all consumer processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.spawn_slots import SpawnSlots

pytest_plugins = ["tests.integration.database_fixtures"]


async def test_at_most_total_holders_across_limiters(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Two limiters stand for two consumer processes sharing one database.
    first = SpawnSlots(db_sessions, 2, lease_seconds=60, poll_seconds=0.05)
    second = SpawnSlots(db_sessions, 2, lease_seconds=60, poll_seconds=0.05)
    await first.ensure_slots()
    await second.ensure_slots()
    inside = 0
    most = 0
    release = asyncio.Event()
    two_inside = asyncio.Event()

    async def spawn(limiter: SpawnSlots) -> None:
        nonlocal inside, most
        async with limiter.hold():
            inside += 1
            most = max(most, inside)
            if inside == 2:
                two_inside.set()
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(spawn(lim)) for lim in (first, second, first, second, first)]
    async with asyncio.timeout(10):
        await two_inside.wait()
    # Give the three others several polls to (wrongly) get in.
    await asyncio.sleep(0.3)
    assert inside == 2
    release.set()
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks)
    assert most == 2


async def test_an_expired_lease_is_taken_over(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    dead = SpawnSlots(db_sessions, 1, lease_seconds=0.2, owner="gone", poll_seconds=0.05)
    await dead.ensure_slots()
    holder = dead.hold()
    await holder.__aenter__()  # a process that dies while holding its slot
    alive = SpawnSlots(db_sessions, 1, lease_seconds=60, poll_seconds=0.05)
    async with asyncio.timeout(10), alive.hold():
        pass


async def test_a_restarted_owner_frees_what_its_dead_run_held(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    crashed = SpawnSlots(db_sessions, 1, lease_seconds=600, owner="consumer-0")
    await crashed.ensure_slots()
    held = crashed.hold()  # kept referenced: a collected generator would free the slot
    await held.__aenter__()  # consumer-0 dies holding the only slot
    other = SpawnSlots(db_sessions, 1, lease_seconds=600, owner="consumer-1", poll_seconds=0.05)
    await other.ensure_slots()  # another owner's start frees nothing
    waiting = asyncio.create_task(other.hold().__aenter__())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    restarted = SpawnSlots(db_sessions, 1, lease_seconds=600, owner="consumer-0")
    await restarted.ensure_slots()
    async with asyncio.timeout(10):
        await waiting


async def test_waiters_stand_in_line_and_hear_their_place(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = SpawnSlots(db_sessions, 1, lease_seconds=60, poll_seconds=0.05)
    second = SpawnSlots(db_sessions, 1, lease_seconds=60, poll_seconds=0.05)
    await first.ensure_slots()
    order: list[str] = []
    places: dict[str, list[int]] = {"b": [], "c": []}
    release = asyncio.Event()
    holder = first.hold()
    await holder.__aenter__()  # "a" holds the only slot

    async def wait(limiter: SpawnSlots, name: str, joined: asyncio.Event) -> None:
        async def heard(place: int) -> None:
            places[name].append(place)
            joined.set()

        async with limiter.hold(heard):
            order.append(name)

    b_joined, c_joined = asyncio.Event(), asyncio.Event()
    b = asyncio.create_task(wait(second, "b", b_joined))
    async with asyncio.timeout(10):
        await b_joined.wait()
    c = asyncio.create_task(wait(first, "c", c_joined))
    async with asyncio.timeout(10):
        await c_joined.wait()
    assert await first.waiting() == 2
    assert places == {"b": [1], "c": [2]}
    release.set()
    await holder.__aexit__(None, None, None)
    async with asyncio.timeout(10):
        await asyncio.gather(b, c)
    assert order == ["b", "c"]  # first come, first served, across processes
    assert await first.waiting() == 0
