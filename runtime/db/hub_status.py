"""Each configured Hub's status: draining (set by an operator) and healthy (set by the
health checks), which together say whether it takes new users; and what each Hub holds
(workspaces, servers running, spawns in progress)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import HubStatus, ServerRecord, SpawnSlot, WorkspaceRecord
from runtime.hubs import HubSpec
from schemas.commands import utcnow


class HubStatusStore:
    """Reads and writes ``hub_status`` rows; a Hub without a row is healthy and open."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def statuses(self) -> dict[str, HubStatus]:
        """Every Hub's row, by name."""
        async with self._sessions() as session:
            return {row.name: row for row in (await session.exec(select(HubStatus))).all()}

    async def taking_new_users(self, hubs: Sequence[HubSpec]) -> list[HubSpec]:
        """Those of ``hubs`` neither draining nor down at their last check."""
        known = await self.statuses()
        return [
            hub
            for hub in hubs
            if hub.name not in known or (not known[hub.name].draining and known[hub.name].healthy)
        ]

    async def set_draining(self, name: str, draining: bool) -> None:
        """Stop (``True``) or resume new placements on the Hub ``name``."""
        await self._upsert(name, draining=draining)

    async def record_check(self, name: str, *, healthy: bool, error: str | None) -> None:
        """Record the outcome of a health check of the Hub ``name``."""
        await self._upsert(name, healthy=healthy, error=error, checked_at=utcnow())

    async def counts(self, first: str) -> HubCounts:
        """What each Hub holds now (:func:`hub_counts`)."""
        return await hub_counts(self._sessions, first)

    async def _upsert(self, name: str, **values: object) -> None:
        for _ in range(2):  # a concurrent first insert: then update it
            async with self._sessions() as session:
                row = await session.get(HubStatus, name)
                if row is None:
                    row = HubStatus(name=name)
                for key, value in values.items():
                    setattr(row, key, value)
                session.add(row)
                try:
                    await session.commit()
                    return
                except IntegrityError:
                    await session.rollback()
        raise RuntimeError(f"could not record the status of Hub {name!r}")


@dataclass(frozen=True)
class HubCounts:
    """Per Hub name: workspaces placed, servers running, spawns holding a slot."""

    users: dict[str, int]
    running: dict[str, int]
    spawning: dict[str, int]


async def hub_counts(sessions: async_sessionmaker[AsyncSession], first: str) -> HubCounts:
    """What each Hub holds now (a workspace recorded with no Hub lives on ``first``)."""
    async with sessions() as session:
        users = (
            await session.exec(
                select(WorkspaceRecord.hub, func.count()).group_by(col(WorkspaceRecord.hub))
            )
        ).all()
        running = (
            await session.exec(
                select(WorkspaceRecord.hub, func.count())
                .join(ServerRecord, col(ServerRecord.workspace) == col(WorkspaceRecord.name))
                .where(col(ServerRecord.running))
                .group_by(col(WorkspaceRecord.hub))
            )
        ).all()
        spawning = (
            await session.exec(
                select(SpawnSlot.hub, func.count())
                .where(col(SpawnSlot.holder).is_not(None), col(SpawnSlot.expires_at) > utcnow())
                .group_by(col(SpawnSlot.hub))
            )
        ).all()

    def by_hub(rows: Sequence[tuple[str | None, int]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for hub, count in rows:
            counts[hub or first] = counts.get(hub or first, 0) + int(count)
        return counts

    return HubCounts(by_hub(users), by_hub(running), by_hub(spawning))
