"""Command records: accepting (idempotently), execution bookkeeping, lookup."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.db.models import CommandRecord, CommandStatus
from schemas.commands import utcnow


@dataclass(frozen=True)
class Accepted:
    """Outcome of recording a command: the record and whether it is new."""

    record: CommandRecord
    created: bool


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


class CommandStore:
    """Persistence of commands, shared by the gateway and the consumers."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session factory (for health checks)."""
        return self._sessions

    async def record(self, record: CommandRecord) -> Accepted:
        """Insert ``record``; with an idempotency key, return the earlier one instead.

        A rejected earlier command (never confirmed by the bus) is revived with the
        new id kept as it was. Raises :class:`IdempotencyConflict` when the key was
        used with another body.
        """
        async with self._sessions() as session:
            if record.idempotency_key is not None:
                earlier = await self._by_key(session, record.app, record.idempotency_key)
                if earlier is not None:
                    return await self._reuse(session, earlier, record)
            session.add(record)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                if record.idempotency_key is None:
                    raise
                earlier = await self._by_key(session, record.app, record.idempotency_key)
                if earlier is None:
                    raise
                return await self._reuse(session, earlier, record)
            return Accepted(record, created=True)

    async def _reuse(
        self, session: AsyncSession, earlier: CommandRecord, new: CommandRecord
    ) -> Accepted:
        if earlier.request_hash != new.request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            )
        if earlier.status == CommandStatus.REJECTED:
            earlier.status = CommandStatus.ACCEPTED
            earlier.correlation_id = new.correlation_id
            earlier.updated_at = utcnow()
            session.add(earlier)
            await session.commit()
            return Accepted(earlier, created=True)
        return Accepted(earlier, created=False)

    @staticmethod
    async def _by_key(session: AsyncSession, app: str, key: str) -> CommandRecord | None:
        stmt = select(CommandRecord).where(
            CommandRecord.app == app, CommandRecord.idempotency_key == key
        )
        return (await session.exec(stmt)).first()

    async def get(self, command_id: uuid.UUID, *, app: str | None = None) -> CommandRecord | None:
        """The command with ``command_id``, only if it belongs to ``app`` (when given)."""
        async with self._sessions() as session:
            record = await session.get(CommandRecord, command_id)
            if record is None or (app is not None and record.app != app):
                return None
            return record

    async def set_status(self, command_id: uuid.UUID, status: CommandStatus) -> None:
        """Set the status without touching anything else (e.g. ``rejected`` on 503)."""
        async with self._sessions() as session:
            record = await session.get(CommandRecord, command_id)
            if record is not None:
                record.status = status
                record.updated_at = utcnow()
                session.add(record)
                await session.commit()

    async def begin_attempt(self, command_id: uuid.UUID) -> CommandRecord | None:
        """Mark the command running and count the attempt; None if unknown."""
        async with self._sessions() as session:
            record = await session.get(CommandRecord, command_id)
            if record is None:
                return None
            if not CommandStatus(record.status).is_final:
                record.status = CommandStatus.RUNNING
                record.attempts += 1
                record.updated_at = utcnow()
                session.add(record)
                await session.commit()
            return record

    async def finish(
        self,
        command_id: uuid.UUID,
        status: CommandStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> CommandRecord | None:
        """Record the final outcome (idempotent: a second finish changes nothing)."""
        async with self._sessions() as session:
            record = await session.get(CommandRecord, command_id)
            if record is None:
                return None
            if CommandStatus(record.status).is_final:
                return record
            now = utcnow()
            record.status = status
            record.result = result
            record.error = error
            record.updated_at = now
            record.finished_at = now
            session.add(record)
            await session.commit()
            return record

    async def requeued(self, command_id: uuid.UUID) -> None:
        """The command waits in a retry queue: back to ``accepted``."""
        await self.set_status(command_id, CommandStatus.ACCEPTED)

    async def earlier_unfinished(self, record: CommandRecord) -> CommandRecord | None:
        """An earlier-accepted, unfinished command of the same user, if any.

        Consumers defer a command while one exists, so that a command waiting in a
        retry queue is not overtaken by later commands for the same user.
        """
        async with self._sessions() as session:
            stmt = (
                select(CommandRecord)
                .where(
                    CommandRecord.user == record.user,
                    col(CommandRecord.created_at) < record.created_at,
                    col(CommandRecord.status).in_([CommandStatus.ACCEPTED, CommandStatus.RUNNING]),
                    CommandRecord.id != record.id,
                )
                .order_by(col(CommandRecord.created_at))
                .limit(1)
            )
            return (await session.exec(stmt)).first()
