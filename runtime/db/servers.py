"""The servers the orchestrator knows: running or not, their activity, their culls.

One row per workspace. The consumers write it as they start and stop servers; the
culler compares it with the Hub's list, records what it sees, and schedules culls.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import CommandRecord, CommandStatus, ServerRecord
from schemas.commands import utcnow
from schemas.workspaces import Workspace

_NO_CULL: dict[str, Any] = {
    "cull_reason": None,
    "cull_scheduled_at": None,
    "cull_deadline": None,
    "cull_command_id": None,
}


@dataclass(frozen=True)
class ScheduledCull:
    """A cull announced for ``deadline``, unless the user is active after ``scheduled_at``."""

    reason: str
    scheduled_at: datetime
    deadline: datetime


class ServerStore:
    """Reads and writes ``server`` rows (each call its own short transaction)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _upsert(self, workspace: Workspace, values: dict[str, Any]) -> None:
        values = {**values, "updated_at": utcnow()}
        async with self._sessions() as session:
            found = await session.exec(
                update(ServerRecord)
                .where(col(ServerRecord.workspace) == workspace.name)
                .values(**values)
            )
            if found.rowcount:
                await session.commit()
                return
            session.add(
                ServerRecord(
                    workspace=workspace.name, app=workspace.app, user=workspace.user, **values
                )
            )
            try:
                await session.commit()
            except IntegrityError:  # another process inserted it meanwhile
                await session.rollback()
                await session.exec(
                    update(ServerRecord)
                    .where(col(ServerRecord.workspace) == workspace.name)
                    .values(**values)
                )
                await session.commit()

    async def started(self, workspace: Workspace, started_at: datetime | None) -> None:
        """The workspace's server is running (since ``started_at``); no cull pending."""
        await self._upsert(
            workspace, {"running": True, "started_at": started_at or utcnow(), **_NO_CULL}
        )

    async def stopped(self, workspace: Workspace) -> None:
        """The workspace's server is stopping or stopped; no cull pending."""
        await self._upsert(workspace, {"running": False, **_NO_CULL})

    async def stopped_by_hub(self, workspace: str) -> bool:
        """Mark a server found gone as stopped; False if it was not running any more
        (the orchestrator stopped it meanwhile: not the Hub's doing)."""
        async with self._sessions() as session:
            done = await session.exec(
                update(ServerRecord)
                .where(col(ServerRecord.workspace) == workspace, col(ServerRecord.running))
                .values(running=False, **_NO_CULL, updated_at=utcnow())
            )
            await session.commit()
            return bool(done.rowcount)

    async def running(self) -> list[ServerRecord]:
        """Every server last seen running."""
        async with self._sessions() as session:
            rows = await session.exec(select(ServerRecord).where(col(ServerRecord.running)))
            return list(rows.all())

    async def all(self) -> list[ServerRecord]:
        """Every known server, running first (for the operator CLI)."""
        async with self._sessions() as session:
            rows = await session.exec(
                select(ServerRecord).order_by(
                    col(ServerRecord.running).desc(), col(ServerRecord.workspace)
                )
            )
            return list(rows.all())

    async def get(self, workspace: str) -> ServerRecord | None:
        """The row of ``workspace``'s server, if any."""
        async with self._sessions() as session:
            return await session.get(ServerRecord, workspace)

    async def seen_active(self, workspace: str, last_activity: datetime | None) -> None:
        """Record the user's last activity as the server reported it."""
        async with self._sessions() as session:
            await session.exec(
                update(ServerRecord)
                .where(col(ServerRecord.workspace) == workspace)
                .values(last_activity=last_activity, updated_at=utcnow())
            )
            await session.commit()

    async def schedule_cull(self, workspace: str, cull: ScheduledCull) -> bool:
        """Announce a cull unless one is pending already; True if this call scheduled it."""
        async with self._sessions() as session:
            done = await session.exec(
                update(ServerRecord)
                .where(
                    col(ServerRecord.workspace) == workspace,
                    col(ServerRecord.running),
                    col(ServerRecord.cull_deadline).is_(None),
                )
                .values(
                    cull_reason=cull.reason,
                    cull_scheduled_at=cull.scheduled_at,
                    cull_deadline=cull.deadline,
                    updated_at=utcnow(),
                )
            )
            await session.commit()
            return bool(done.rowcount)

    async def cull_submitted(self, workspace: str, command_id: uuid.UUID) -> None:
        """The cull command was recorded (the cull is now in the user's command order)."""
        async with self._sessions() as session:
            await session.exec(
                update(ServerRecord)
                .where(col(ServerRecord.workspace) == workspace)
                .values(cull_command_id=command_id, updated_at=utcnow())
            )
            await session.commit()

    async def cancel_cull(self, workspace: str) -> None:
        """Forget a pending cull (the user came back, or the cull ran)."""
        async with self._sessions() as session:
            await session.exec(
                update(ServerRecord)
                .where(col(ServerRecord.workspace) == workspace)
                .values(**_NO_CULL, updated_at=utcnow())
            )
            await session.commit()


async def culls_by_reason(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], int]:
    """How many servers each app had culled, by reason: the ``cull-server`` commands
    that succeeded and stopped a server."""
    async with sessions() as session:
        rows = await session.exec(
            select(CommandRecord.app, CommandRecord.result).where(
                col(CommandRecord.type) == "cull-server",
                col(CommandRecord.status) == CommandStatus.SUCCEEDED.value,
            )
        )
        counts: dict[tuple[str, str], int] = {}
        for app, result in rows.all():
            if result and result.get("culled"):
                key = (app, str(result.get("reason")))
                counts[key] = counts.get(key, 0) + 1
        return counts
