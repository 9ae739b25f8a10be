"""The command store: accepting commands (idempotently), execution bookkeeping, lookup."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, and_, bindparam, func, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.command_records import COMMAND_TABLE, NewCommand, command_row, record_of_row
from runtime.db.group_insert import GroupInsert
from runtime.db.models import UNFINISHED_STATUSES, CommandRecord, CommandStatus
from runtime.db.outbox import OUTBOX_TABLE, outbox_rows
from runtime.outgoing import OutgoingMessage
from schemas.commands import utcnow
from schemas.lifecycle import CommandProgress, ProgressPhase


@dataclass(frozen=True)
class Accepted:
    """Outcome of recording a command: the record and whether it is new."""

    record: CommandRecord | NewCommand
    created: bool


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


_FINAL = [s.value for s in CommandStatus if s.is_final]

# The consumers' per-command statements, built once: building a statement and its
# cache key on every call was a large part of a consumer's CPU per command.
_C = COMMAND_TABLE.c
_ID = bindparam("command_id", type_=_C.id.type)
_NOW = bindparam("now", type_=_C.updated_at.type)
_UNFINISHED = and_(_C.id == _ID, _C.status.not_in(_FINAL))
_BY_ID = COMMAND_TABLE.select().where(_C.id == _ID)
_BEGIN_ATTEMPT = (
    update(COMMAND_TABLE)
    .where(_UNFINISHED)
    .values(status=CommandStatus.RUNNING.value, attempts=_C.attempts + 1, updated_at=_NOW)
)
_FINISH = (
    update(COMMAND_TABLE)
    .where(_UNFINISHED)
    .values(
        status=bindparam("status", type_=_C.status.type),
        result=bindparam("result", type_=_C.result.type),
        error=bindparam("error", type_=_C.error.type),
        progress=bindparam("progress", type_=_C.progress.type),
        updated_at=_NOW,
        finished_at=_NOW,
    )
)
_SET_PROGRESS = (
    update(COMMAND_TABLE)
    .where(_UNFINISHED)
    .values(progress=bindparam("progress", type_=_C.progress.type))
)
_EARLIER_UNFINISHED = (
    COMMAND_TABLE.select()
    .where(
        _C.user == bindparam("user", type_=_C.user.type),
        _C.created_at < bindparam("created_at", type_=_C.created_at.type),
        _C.status.in_([CommandStatus.ACCEPTED.value, CommandStatus.RUNNING.value]),
        _C.id != _ID,
    )
    .order_by(_C.created_at)
    .limit(1)
)


def _check_same_request(earlier: CommandRecord, request_hash: str | None) -> None:
    if earlier.request_hash != request_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )


class CommandStore:
    """Persistence of commands, shared by the gateway and the consumers."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        engine: AsyncEngine = sessions.kw["bind"]  # make_sessionmaker binds it to the engine
        self._engine = engine
        # Single-statement writes run in autocommit: on SQLite a transaction holds the
        # database's one write lock from its first write until COMMIT, and with aiosqlite
        # every step is a turn of the event loop, so under load other processes' writers
        # sleep in SQLite's busy handler; one statement holds it only while it runs.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._group_insert = GroupInsert(engine, COMMAND_TABLE)

    async def close(self) -> None:
        """Release what the store holds beside the engine (the engine is the caller's)."""
        await self._group_insert.close()

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session factory (for health checks)."""
        return self._sessions

    async def record(self, record: CommandRecord | NewCommand) -> Accepted:
        """Insert ``record``; with an idempotency key, return the earlier one instead.

        A rejected earlier command (never confirmed by the bus) is revived with the
        new id kept as it was. Raises :class:`IdempotencyConflict` when the key was
        used with another body. Commands without a key are group-committed.
        """
        key = record.idempotency_key
        if key is None:
            await self._group_insert.insert(command_row(record))
            return Accepted(record, created=True)
        if isinstance(record, NewCommand):
            record = record.as_record()
        async with self._sessions() as session:
            earlier = await self._by_key(session, record.app, key)
            if earlier is not None:
                return await self._reuse(session, earlier, record)
            session.add(record)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                earlier = await self._by_key(session, record.app, key)
                if earlier is None:
                    raise
                return await self._reuse(session, earlier, record)
            return Accepted(record, created=True)

    async def replay_of(self, app: str, key: str, request_hash: str | None) -> CommandRecord | None:
        """The command ``app`` already recorded with ``key``, unless it was rejected;
        None when there is none. Writes nothing. Raises :class:`IdempotencyConflict`
        when the key was used with another body."""
        async with self._sessions() as session:
            earlier = await self._by_key(session, app, key)
        if earlier is None:
            return None
        _check_same_request(earlier, request_hash)
        return None if earlier.status == CommandStatus.REJECTED else earlier

    async def _reuse(
        self, session: AsyncSession, earlier: CommandRecord, new: CommandRecord
    ) -> Accepted:
        _check_same_request(earlier, new.request_hash)
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

    async def reject(self, command_id: uuid.UUID) -> bool:
        """Mark an ``accepted`` command ``rejected`` (the bus never confirmed it).

        Only from ``accepted``: if a confirm was merely late and a consumer already
        started the command, its progress is not overwritten. True if it changed.
        """
        async with self._autocommit.connect() as connection:
            result = await connection.execute(
                update(COMMAND_TABLE)
                .where(_C.id == _ID, _C.status == CommandStatus.ACCEPTED.value)
                .values(status=CommandStatus.REJECTED.value, updated_at=utcnow()),
                {"command_id": command_id},
            )
            return bool(result.rowcount)

    async def begin_attempt(self, command_id: uuid.UUID) -> CommandRecord | None:
        """Mark the command running and count the attempt; None if unknown.

        A final command is returned unchanged.
        """
        return await self._update_unfinished(
            _BEGIN_ATTEMPT, {"command_id": command_id, "now": utcnow()}
        )

    async def finish(
        self,
        command_id: uuid.UUID,
        status: CommandStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        outbox: Sequence[OutgoingMessage] = (),
    ) -> CommandRecord | None:
        """Record the final outcome and the messages it causes, in one transaction.

        Idempotent: a second finish changes nothing and records no message (the first
        one's are in the outbox already). The messages stay in the outbox until the
        caller (or the relay) has them confirmed by the broker. Its progress becomes
        ``done``.
        """
        now = utcnow()
        parameters = {
            "command_id": command_id,
            "status": status.value,
            "result": result,
            "error": error,
            "now": now,
            "progress": CommandProgress(phase=ProgressPhase.DONE, updated_at=now).model_dump(
                mode="json"
            ),
        }
        if not outbox:
            return await self._update_unfinished(_FINISH, parameters)
        async with self._engine.begin() as connection:
            finished = await connection.execute(_FINISH, parameters)
            if finished.rowcount:
                await connection.execute(OUTBOX_TABLE.insert(), outbox_rows(outbox))
            found = await connection.execute(_BY_ID, {"command_id": command_id})
            return record_of_row(found.first())

    async def waiting(self, older_than: timedelta) -> tuple[int, datetime | None]:
        """How many commands are ``accepted`` and untouched for ``older_than``, and the
        oldest one's last change (None when there is none)."""
        cutoff = utcnow() - older_than
        query = core_select(func.count(), func.min(_C.updated_at)).where(
            _C.status == CommandStatus.ACCEPTED.value, _C.updated_at < cutoff
        )
        async with self._autocommit.connect() as connection:
            count, oldest = (await connection.execute(query)).one()
        return int(count), oldest

    async def claim_stale(
        self, *, accepted_for: timedelta, running_for: timedelta, limit: int, max_attempts: int
    ) -> list[CommandRecord]:
        """Unfinished commands nobody touched for a while, claimed for re-publishing.

        ``accepted`` ones untouched for ``accepted_for`` (longer than any retry delay:
        a command waiting in a retry queue is touched when it goes there) and
        ``running`` ones for ``running_for`` (longer than any attempt) may have lost
        their message with the broker. Claiming touches them, so another relay does not
        take them too, and the order barrier sees them alive. Commands already tried
        ``max_attempts`` times are left alone (they keep failing for another reason).
        """
        now = utcnow()
        stale = and_(
            _C.status.in_(UNFINISHED_STATUSES),
            _C.attempts < max_attempts,
            or_(
                and_(_C.status == CommandStatus.ACCEPTED.value, _C.updated_at < now - accepted_for),
                and_(_C.status == CommandStatus.RUNNING.value, _C.updated_at < now - running_for),
            ),
        )
        oldest = core_select(_C.id).where(stale).order_by(_C.updated_at).limit(limit)
        claim = (
            update(COMMAND_TABLE)
            .where(_C.id.in_(oldest.scalar_subquery()), stale)
            .values(updated_at=now)
            .returning(*COMMAND_TABLE.columns)
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(claim)).all()
        return [record for row in rows if (record := record_of_row(row)) is not None]

    async def _update_unfinished(
        self, statement: Update, parameters: dict[str, Any]
    ) -> CommandRecord | None:
        """Run ``statement`` (an UPDATE of an unfinished command; autocommitted: this runs
        twice per command in the consumers); the record as it is afterwards, or None if
        there is no such command."""
        async with self._autocommit.connect() as connection:
            await connection.execute(statement, parameters)
            found = await connection.execute(_BY_ID, {"command_id": parameters["command_id"]})
            return record_of_row(found.first())

    async def set_progress(self, command_id: uuid.UUID, progress: CommandProgress) -> None:
        """Show ``progress`` in the view of an unfinished command (a finished one keeps
        ``done``). Does not touch ``updated_at``, which the relay's staleness reads."""
        async with self._autocommit.connect() as connection:
            await connection.execute(
                _SET_PROGRESS,
                {"command_id": command_id, "progress": progress.model_dump(mode="json")},
            )

    async def requeued(self, command_id: uuid.UUID) -> None:
        """The command waits in a retry queue: back to ``accepted``."""
        await self.set_status(command_id, CommandStatus.ACCEPTED)

    async def earlier_unfinished(self, record: CommandRecord) -> CommandRecord | None:
        """An earlier-accepted, unfinished command of the same user, if any.

        Consumers defer a command while one exists, so that a command waiting in a
        retry queue is not overtaken by later commands for the same user.
        """
        parameters = {"user": record.user, "created_at": record.created_at, "command_id": record.id}
        async with self._autocommit.connect() as connection:
            return record_of_row(
                (await connection.execute(_EARLIER_UNFINISHED, parameters)).first()
            )
