"""Commands as rows of the ``command`` table: the new command the gateway records, and
the conversions between command records and Core rows of their table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table

from runtime.db.models import CommandRecord, CommandStatus, new_command_id
from schemas.commands import utcnow

COMMAND_TABLE: Table = CommandRecord.__table__  # type: ignore[attr-defined]
_COLUMNS = list(COMMAND_TABLE.columns)


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
    progress: dict[str, Any] | None = None

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
            "progress": self.progress,
        }

    def as_record(self) -> CommandRecord:
        """The same command as an ORM object."""
        return CommandRecord(**self.as_row())


def command_row(record: CommandRecord | NewCommand) -> dict[str, Any]:
    """The ``command`` table row of ``record``, as Core inserts it."""
    if isinstance(record, NewCommand):
        return record.as_row()
    return {c.key: getattr(record, c.key) for c in _COLUMNS}


def record_of_row(row: Row[Any] | None) -> CommandRecord | None:
    """The command of a Core row of its table (None stays None)."""
    return None if row is None else CommandRecord(**row._mapping)
