"""Each configured Hub's status: draining (set by an operator) and healthy (set by the
health checks), which together say whether it takes new users."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import HubStatus
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
