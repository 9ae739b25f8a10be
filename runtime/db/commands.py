"""Command records: accepting (idempotently), execution bookkeeping, lookup."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, Update, and_, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.engine import sqlite_file
from runtime.db.models import CommandRecord, CommandStatus, new_command_id
from runtime.db.sqlite_batch import SqliteBatchInserter
from schemas.commands import utcnow


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command about to be recorded, as the gateway builds it for every request.

    A plain dataclass: building a :class:`CommandRecord` (a validated ORM object) costs
    more than the rest of recording it, and a new command needs no ORM state.
    """

    app: str
    type: str
    user: str
    payload: dict[str, Any]
    correlation_id: str
    idempotency_key: str | None = None
    request_hash: str | None = None
    id: uuid.UUID = field(default_factory=new_command_id)
    created_at: datetime = field(default_factory=utcnow)
    status: str = CommandStatus.ACCEPTED
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    finished_at: datetime | None = None

    @property
    def updated_at(self) -> datetime:
        """Same as ``created_at`` until something happens to the command."""
        return self.created_at

    def as_row(self) -> dict[str, Any]:
        """The ``command`` table row."""
        return {
            "id": self.id,
            "app": self.app,
            "type": self.type,
            "user": self.user,
            "payload": self.payload,
            "status": self.status,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "idempotency_key": self.idempotency_key,
            "request_hash": self.request_hash,
            "correlation_id": self.correlation_id,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "finished_at": self.finished_at,
        }

    def as_record(self) -> CommandRecord:
        """The same command as an ORM object."""
        return CommandRecord(**self.as_row())


@dataclass(frozen=True)
class Accepted:
    """Outcome of recording a command: the record and whether it is new."""

    record: CommandRecord | NewCommand
    created: bool


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


_FINAL = [s.value for s in CommandStatus if s.is_final]
_TABLE: Table = CommandRecord.__table__  # type: ignore[attr-defined]
_COLUMNS = list(_TABLE.columns)

# The consumers' per-command statements, built once: building a statement and its
# cache key on every call was a large part of a consumer's CPU per command.
_C = _TABLE.c
_ID = bindparam("command_id", type_=_C.id.type)
_NOW = bindparam("now", type_=_C.updated_at.type)
_UNFINISHED = and_(_C.id == _ID, _C.status.not_in(_FINAL))
_BY_ID = _TABLE.select().where(_C.id == _ID)
_BEGIN_ATTEMPT = (
    update(_TABLE)
    .where(_UNFINISHED)
    .values(status=CommandStatus.RUNNING.value, attempts=_C.attempts + 1, updated_at=_NOW)
)
_FINISH = (
    update(_TABLE)
    .where(_UNFINISHED)
    .values(
        status=bindparam("status", type_=_C.status.type),
        result=bindparam("result", type_=_C.result.type),
        error=bindparam("error", type_=_C.error.type),
        updated_at=_NOW,
        finished_at=_NOW,
    )
)
_EARLIER_UNFINISHED = (
    _TABLE.select()
    .where(
        _C.user == bindparam("user", type_=_C.user.type),
        _C.created_at < bindparam("created_at", type_=_C.created_at.type),
        _C.status.in_([CommandStatus.ACCEPTED.value, CommandStatus.RUNNING.value]),
        _C.id != _ID,
    )
    .order_by(_C.created_at)
    .limit(1)
)


class GroupInsert:
    """Inserts the commands of concurrent callers together: one transaction per batch.

    Each caller waits until its row is committed. Rows queued while a batch commits
    go into the next batch (group commit), so under load a process has one writer
    committing many rows at a time instead of many writers queueing for SQLite's
    write lock (whose busy handler sleeps for milliseconds) or PostgreSQL's WAL flush.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._sqlite_file = sqlite_file(engine)
        self._sqlite: SqliteBatchInserter | None = None  # for a SQLite file, on first use

    async def close(self) -> None:
        """Release the SQLite writer thread, if one was started."""
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        if self._sqlite_file is not None:
            if self._sqlite is None:
                self._sqlite = SqliteBatchInserter(self._engine, _TABLE, self._sqlite_file)
            await self._sqlite.insert(rows)
            return
        # Core, not the ORM: nothing but the INSERT is needed for a batch.
        async with self._engine.begin() as connection:
            await connection.execute(_TABLE.insert(), rows)

    async def insert(self, row: dict[str, Any]) -> None:
        """Insert ``row``; returns once committed, raises what the batch raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                await self._write([row for row, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


class CommandStore:
    """Persistence of commands, shared by the gateway and the consumers."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        engine: AsyncEngine = sessions.kw["bind"]  # make_sessionmaker binds it to the engine
        # Single-statement writes run in autocommit: on SQLite a transaction holds the
        # database's one write lock from its first write until COMMIT, and with aiosqlite
        # every step is a turn of the event loop, so under load other processes' writers
        # sleep in SQLite's busy handler; one statement holds it only while it runs.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._group_insert = GroupInsert(engine)

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
            row = (
                record.as_row()
                if isinstance(record, NewCommand)
                else {c.key: getattr(record, c.key) for c in _COLUMNS}
            )
            await self._group_insert.insert(row)
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

    async def reject(self, command_id: uuid.UUID) -> bool:
        """Mark an ``accepted`` command ``rejected`` (the bus never confirmed it).

        Only from ``accepted``: if a confirm was merely late and a consumer already
        started the command, its progress is not overwritten. True if it changed.
        """
        async with self._sessions() as session:
            result = await session.exec(
                update(CommandRecord)
                .where(
                    col(CommandRecord.id) == command_id,
                    col(CommandRecord.status) == CommandStatus.ACCEPTED,
                )
                .values(status=CommandStatus.REJECTED, updated_at=utcnow())
            )
            await session.commit()
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
    ) -> CommandRecord | None:
        """Record the final outcome (idempotent: a second finish changes nothing)."""
        return await self._update_unfinished(
            _FINISH,
            {
                "command_id": command_id,
                "status": status.value,
                "result": result,
                "error": error,
                "now": utcnow(),
            },
        )

    async def _update_unfinished(
        self, statement: Update, parameters: dict[str, Any]
    ) -> CommandRecord | None:
        """Run ``statement`` (an UPDATE of an unfinished command; autocommitted: this runs
        twice per command in the consumers); the record as it is afterwards, or None if
        there is no such command."""
        async with self._autocommit.connect() as connection:
            await connection.execute(statement, parameters)
            found = await connection.execute(_BY_ID, {"command_id": parameters["command_id"]})
            return _record(found.first())

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
            return _record((await connection.execute(_EARLIER_UNFINISHED, parameters)).first())


def _record(row: Row[Any] | None) -> CommandRecord | None:
    """The command of a Core row of its table (None stays None)."""
    return None if row is None else CommandRecord(**row._mapping)
