"""The outbox table: messages recorded with the outcome that caused them.

A consumer writes a finished command's events in the same transaction as the outcome
(:func:`outbox_rows` gives the rows; ``CommandStore.finish`` inserts them), publishes
them, and deletes them once the broker confirmed. What is left (a crash or a broker
failure in between) the relay claims and publishes again: at least once, with the
same message ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.db.models import OutboxRecord
from runtime.outgoing import OutgoingMessage
from schemas.commands import utcnow

OUTBOX_TABLE: Table = OutboxRecord.__table__  # type: ignore[attr-defined]
_O = OUTBOX_TABLE.c


def outbox_rows(messages: Sequence[OutgoingMessage]) -> list[dict[str, Any]]:
    """The ``outbox_message`` rows of ``messages`` (to insert in the caller's transaction)."""
    now = utcnow()
    return [
        {
            "message_id": m.message_id,
            "exchange": m.exchange,
            "routing_key": m.routing_key,
            "body": m.body,
            "caused_by": m.caused_by,
            "correlation_id": m.correlation_id,
            "content_type": m.content_type,
            "message_type": m.type_,
            "headers": m.headers,
            "created_at": now,
        }
        for m in messages
    ]


def _message(row: Any) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=row.message_id,
        exchange=row.exchange,
        routing_key=row.routing_key,
        body=bytes(row.body),
        caused_by=row.caused_by,
        correlation_id=row.correlation_id,
        content_type=row.content_type,
        type_=row.message_type,
        headers=dict(row.headers or {}),
    )


class Outbox:
    """Reads, claims and clears outbox rows (each call its own short transaction)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def of_cause(self, caused_by: uuid.UUID) -> list[OutgoingMessage]:
        """The unpublished messages ``caused_by`` produced (e.g. a redelivered command's)."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(OUTBOX_TABLE).where(_O.caused_by == caused_by).order_by(_O.created_at)
            )
            return [_message(row) for row in rows]

    async def claim_stale(self, older_than: timedelta, limit: int) -> list[OutgoingMessage]:
        """Messages left unpublished for ``older_than``, oldest first, claimed for this
        caller: their age restarts, so another relay does not take them meanwhile."""
        now = utcnow()
        cutoff: datetime = now - older_than
        stale = (
            select(_O.message_id)
            .where(_O.created_at < cutoff)
            .order_by(_O.created_at)
            .limit(limit)
            .scalar_subquery()
        )
        claim = (
            update(OUTBOX_TABLE)
            .where(_O.message_id.in_(stale), _O.created_at < cutoff)
            .values(created_at=now)
            .returning(*OUTBOX_TABLE.columns)
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(claim)).all()
        return [_message(row) for row in rows]

    async def add(self, messages: Sequence[OutgoingMessage]) -> None:
        """Record messages that no outcome commits (e.g. ``server.*`` events as they
        happen), so that the relay publishes them if the caller cannot."""
        if not messages:
            return
        async with self._engine.begin() as connection:
            await connection.execute(OUTBOX_TABLE.insert(), outbox_rows(messages))

    async def remove(self, message_ids: Sequence[str]) -> None:
        """Forget messages the broker confirmed."""
        if not message_ids:
            return
        async with self._engine.begin() as connection:
            await connection.execute(delete(OUTBOX_TABLE).where(_O.message_id.in_(message_ids)))

    async def count(self) -> int:
        """How many messages wait (for metrics and tests)."""
        async with self._engine.connect() as connection:
            counted = await connection.execute(select(func.count()).select_from(OUTBOX_TABLE))
            return int(counted.scalar_one())
