"""A limit on concurrent spawns per Hub, shared by every consumer process: leases in
the DB.

Each of a Hub's ``total`` slots is a row; a spawn holds one by writing its holder id and an
expiry, and frees it when done. A holder that dies without freeing its slot loses it
when the lease expires (set it above the spawn timeout). Waiters in the process that
frees a slot wake at once; other processes notice within a short poll (the database
offers no event to wait on), which spawns of seconds do not feel.

Spawns that find every slot of their Hub taken stand in that Hub's line
(``spawn_waiter`` rows): first come, first served, and each knows its place, which it
reports while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import SpawnSlot, SpawnWaiter
from runtime.hubs import DEFAULT_HUB
from runtime.metrics import SPAWN_WAITING
from schemas.commands import utcnow

POLL_SECONDS = 0.2
# A waiter refreshes its row and re-reads its place this often; one not seen for
# WAITER_GONE_SECONDS (its process died) no longer holds its place.
WAITER_SEEN_SECONDS = 1.0
WAITER_GONE_SECONDS = 30.0
OnWait = Callable[[int], Awaitable[None]]


class SpawnSlots:
    """``async with slots.hold(): ...`` runs at most ``total`` bodies at once for ``hub``,
    system-wide.

    ``owner`` names the process (unique among running ones, e.g. ``consumer-0``): its
    leases are freed when a process of the same name starts again after a crash.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        total: int,
        *,
        lease_seconds: float,
        owner: str = "consumer",
        hub: str = DEFAULT_HUB,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._of_hub = col(SpawnSlot.hub) == hub
        self._owner = owner
        self._total = total
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._released = asyncio.Event()  # wakes waiters of this process at once

    async def ensure_slots(self) -> None:
        """Create the slot rows that are missing (safe from many processes at once),
        and free the slots an earlier run of this owner held when it died."""
        async with self._sessions() as session:
            await session.exec(
                update(SpawnSlot)
                .where(self._of_hub, col(SpawnSlot.holder).startswith(f"{self._owner}:"))
                .values(holder=None, expires_at=None)
            )
            await session.commit()
            have = set((await session.exec(select(SpawnSlot.slot).where(self._of_hub))).all())
            for slot in range(self._total):
                if slot in have:
                    continue
                try:
                    await session.exec(insert(SpawnSlot).values(hub=self._hub, slot=slot))
                    await session.commit()
                except IntegrityError:
                    await session.rollback()

    async def _try_acquire(self, holder: str, since: datetime | None = None) -> int | None:
        """A free slot for ``holder``, or None. A waiter (``since``) takes one only when
        no more waiters stand before it than slots are free (first come, first served)."""
        now = utcnow()
        free = and_(
            self._of_hub,
            col(SpawnSlot.slot) < self._total,
            or_(col(SpawnSlot.holder).is_(None), col(SpawnSlot.expires_at) < now),
        )
        async with self._sessions() as session:
            if since is not None:
                ahead = await self._ahead(session, holder, since)
                free_count = (await session.exec(select(func.count()).where(free))).one()
                if ahead >= int(free_count):
                    return None
            candidates = (
                await session.exec(select(SpawnSlot.slot).where(free).order_by(col(SpawnSlot.slot)))
            ).all()
            for slot in list(candidates):
                taken = await session.exec(
                    update(SpawnSlot)
                    .where(col(SpawnSlot.slot) == slot, free)
                    .values(holder=holder, expires_at=now + self._lease)
                )
                await session.commit()
                if taken.rowcount == 1:
                    return int(slot)
        return None

    async def _release(self, slot: int, holder: str) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(SpawnSlot)
                .where(self._of_hub, col(SpawnSlot.slot) == slot, col(SpawnSlot.holder) == holder)
                .values(holder=None, expires_at=None)
            )
            await session.commit()

    async def _ahead(self, session: AsyncSession, holder: str, since: datetime) -> int:
        """How many live waiters for this Hub stand before ``holder`` (who came at
        ``since``)."""
        alive = and_(
            col(SpawnWaiter.hub) == self._hub,
            col(SpawnWaiter.seen_at) > utcnow() - timedelta(seconds=WAITER_GONE_SECONDS),
        )
        earlier = or_(
            col(SpawnWaiter.since) < since,
            and_(col(SpawnWaiter.since) == since, col(SpawnWaiter.holder) < holder),
        )
        counted = await session.exec(select(func.count()).where(alive, earlier))
        return int(counted.one())

    async def _join_line(self, holder: str) -> datetime:
        now = utcnow()
        async with self._sessions() as session:
            await session.exec(
                insert(SpawnWaiter).values(holder=holder, hub=self._hub, since=now, seen_at=now)
            )
            await session.commit()
        return now

    async def _leave_line(self, holder: str) -> None:
        async with self._sessions() as session:
            await session.exec(delete(SpawnWaiter).where(col(SpawnWaiter.holder) == holder))
            await session.commit()

    async def _still_waiting(self, holder: str, since: datetime) -> int:
        """Refresh the waiter's row; its place in line (1 = next)."""
        async with self._sessions() as session:
            await session.exec(
                update(SpawnWaiter)
                .where(col(SpawnWaiter.holder) == holder)
                .values(seen_at=utcnow())
            )
            await session.commit()
            return await self._ahead(session, holder, since) + 1

    async def waiting(self) -> int:
        """How many spawns stand in line for this Hub, system-wide (live waiters)."""
        return await spawns_waiting(self._sessions, self._hub)

    @contextlib.asynccontextmanager
    async def hold(self, on_wait: OnWait | None = None) -> AsyncIterator[None]:
        """Wait for a free slot, hold it for the body, free it afterwards.

        When no slot is free at once the spawn stands in line; ``on_wait`` is called
        with its place (1 = next) when it joins and whenever the place changes.
        """
        holder = f"{self._owner}:{uuid.uuid4().hex}"
        slot = await self._try_acquire(holder)
        if slot is None:
            slot = await self._wait_in_line(holder, on_wait)
        try:
            yield
        finally:
            await asyncio.shield(self._release(slot, holder))
            self._released.set()

    async def _wait_in_line(self, holder: str, on_wait: OnWait | None) -> int:
        since = await self._join_line(holder)
        SPAWN_WAITING.inc()
        loop = asyncio.get_running_loop()
        place, refreshed = 0, 0.0
        try:
            while True:
                if loop.time() - refreshed >= WAITER_SEEN_SECONDS or place == 0:
                    refreshed = loop.time()
                    now_place = await self._still_waiting(holder, since)
                    if now_place != place and on_wait is not None:
                        await on_wait(now_place)
                    place = now_place
                slot = await self._try_acquire(holder, since)
                if slot is not None:
                    return slot
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), self._poll)
        finally:
            SPAWN_WAITING.dec()
            await asyncio.shield(self._leave_line(holder))


async def spawns_waiting(sessions: async_sessionmaker[AsyncSession], hub: str | None = None) -> int:
    """How many spawns stand in line for a slot of ``hub`` (of any Hub when None),
    system-wide (live waiters)."""
    alive = col(SpawnWaiter.seen_at) > utcnow() - timedelta(seconds=WAITER_GONE_SECONDS)
    if hub is not None:
        alive = and_(alive, col(SpawnWaiter.hub) == hub)
    async with sessions() as session:
        return int((await session.exec(select(func.count()).where(alive))).one())
