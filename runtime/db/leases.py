"""Leases on jobs that must run in one process at a time, system-wide (the culler).

A holder keeps its lease by renewing it before it expires; when it dies, another
process takes the job over once the lease has expired.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import JobLease
from schemas.commands import utcnow


class JobLeases:
    """``await leases.hold("culler", "consumer-0", ttl)`` takes or renews a lease."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def hold(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take ``name`` if free or expired, or renew it if ``holder`` has it; True if
        ``holder`` holds it until ``now + ttl``."""
        now = utcnow()
        async with self._sessions() as session:
            taken = await session.exec(
                update(JobLease)
                .where(
                    col(JobLease.name) == name,
                    or_(
                        col(JobLease.holder) == holder,
                        col(JobLease.holder).is_(None),
                        col(JobLease.expires_at) < now,
                    ),
                )
                .values(holder=holder, expires_at=now + ttl)
            )
            await session.commit()
            if taken.rowcount:
                return True
            try:
                await session.exec(
                    insert(JobLease).values(name=name, holder=holder, expires_at=now + ttl)
                )
                await session.commit()
            except IntegrityError:  # the row exists and another holder has it
                await session.rollback()
                return False
            return True

    async def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if ``holder`` has it."""
        async with self._sessions() as session:
            await session.exec(
                update(JobLease)
                .where(col(JobLease.name) == name, col(JobLease.holder) == holder)
                .values(holder=None, expires_at=None)
            )
            await session.commit()
