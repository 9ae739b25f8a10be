"""One limit on concurrent spawns shared by every consumer process: leases in the DB.

Each of ``total`` slots is a row; a spawn holds one by writing its holder id and an
expiry, and frees it when done. A holder that dies without freeing its slot loses it
when the lease expires (set it above the spawn timeout). Waiters in the process that
frees a slot wake at once; other processes notice within a short poll (the database
offers no event to wait on), which spawns of seconds do not feel.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import SpawnSlot
from schemas.commands import utcnow

POLL_SECONDS = 0.2


class SpawnSlots:
    """``async with slots.hold(): ...`` runs at most ``total`` bodies at once, system-wide.

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
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._sessions = sessions
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
                .where(col(SpawnSlot.holder).startswith(f"{self._owner}:"))
                .values(holder=None, expires_at=None)
            )
            await session.commit()
            have = set((await session.exec(select(SpawnSlot.slot))).all())
            for slot in range(self._total):
                if slot in have:
                    continue
                try:
                    await session.exec(insert(SpawnSlot).values(slot=slot))
                    await session.commit()
                except IntegrityError:
                    await session.rollback()

    async def _try_acquire(self, holder: str) -> int | None:
        now = utcnow()
        free = or_(col(SpawnSlot.holder).is_(None), col(SpawnSlot.expires_at) < now)
        async with self._sessions() as session:
            candidates = (
                await session.exec(
                    select(SpawnSlot.slot)
                    .where(col(SpawnSlot.slot) < self._total, free)
                    .order_by(col(SpawnSlot.slot))
                )
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
                .where(col(SpawnSlot.slot) == slot, col(SpawnSlot.holder) == holder)
                .values(holder=None, expires_at=None)
            )
            await session.commit()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a free slot, hold it for the body, free it afterwards."""
        holder = f"{self._owner}:{uuid.uuid4().hex}"
        while (slot := await self._try_acquire(holder)) is None:
            self._released.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self._poll)
        try:
            yield
        finally:
            await asyncio.shield(self._release(slot, holder))
            self._released.set()
