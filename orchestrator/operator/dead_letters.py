"""``orchestrator dead-letters``: list, show, replay and purge the parking lot.

Messages are read with ``basic.get`` and left unacknowledged, so those not acted on
return to the queue when the channel closes. A message's id is its ``message_id``
(the command id for commands) or, for messages without one (e.g. undecodable
poison), ``sha-`` and the start of the sha256 of its body.

Replay sends a message back to the commands exchange under its original routing key
(the user), without the dead-letter and retry headers, and reopens its command record
(``failed`` → ``accepted``) so that it is performed again; it is removed from the
dead-letter queue only after the broker confirmed the replayed copy.
"""

from __future__ import annotations

import argparse
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, cast

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.operator.tables import print_rows
from runtime.bus.connection import connect
from runtime.bus.publisher import ConfirmedPublisher
from runtime.bus.topology import declare_topology
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.models import CommandRecord, CommandStatus
from runtime.settings import CommonSettings
from schemas import topology as t
from schemas.commands import utcnow

BROWSE_LIMIT = 10_000
_DROPPED_ON_REPLAY = (
    t.HEADER_DEAD_REASON,
    t.HEADER_ROUTING_KEY,
    t.HEADER_ATTEMPT,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


@dataclass(frozen=True)
class DeadLetter:
    """One parked message as the operator sees it."""

    id: str
    reason: str
    routing_key: str
    type: str | None
    headers: dict[str, Any]
    body: bytes
    message: AbstractIncomingMessage

    def row(self) -> dict[str, Any]:
        """The summary row for ``list``."""
        return {
            "id": self.id,
            "type": self.type or "",
            "routing_key": self.routing_key,
            "reason": self.reason,
        }

    def detail(self) -> dict[str, Any]:
        """Everything for ``show`` (the body as text when it is UTF-8, else hex)."""
        try:
            body: str = self.body.decode()
        except UnicodeDecodeError:
            body = "hex:" + self.body.hex()
        return {**self.row(), "headers": self.headers, "body": body}


def _reason(headers: dict[str, Any]) -> str:
    reason = headers.get(t.HEADER_DEAD_REASON)
    if reason:
        return str(reason)
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths[0], dict):
        return f"dead-lettered by the broker: {deaths[0].get('reason', 'unknown')}"
    return "unknown"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    headers = _plain(dict(message.headers or {}))
    ident = message.message_id or "sha-" + hashlib.sha256(message.body).hexdigest()[:16]
    routing_key = str(headers.get(t.HEADER_ROUTING_KEY) or message.routing_key or "")
    return DeadLetter(
        ident, _reason(headers), routing_key, message.type, headers, message.body, message
    )


async def browse(channel: AbstractChannel) -> list[DeadLetter]:
    """Every parked message (up to BROWSE_LIMIT), left unacknowledged on ``channel``."""
    queue = await channel.get_queue(t.DEAD_LETTER_QUEUE, ensure=False)
    found: list[DeadLetter] = []
    while len(found) < BROWSE_LIMIT:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        found.append(_dead_letter(message))
    return found


async def _reopen(sessions: async_sessionmaker[AsyncSession], command_id: str) -> bool:
    """Set a failed command back to ``accepted`` so that a consumer performs it again."""
    try:
        ident = uuid.UUID(command_id)
    except ValueError:
        return False
    async with sessions() as session:
        result = await session.exec(
            update(CommandRecord)
            .where(
                col(CommandRecord.id) == ident,
                col(CommandRecord.status) == CommandStatus.FAILED,
            )
            .values(
                status=CommandStatus.ACCEPTED, error=None, finished_at=None, updated_at=utcnow()
            )
        )
        await session.commit()
        return bool(cast(CursorResult[Any], result).rowcount)


async def _replay(
    letter: DeadLetter,
    publisher: ConfirmedPublisher,
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str, Any]:
    headers = {k: v for k, v in letter.headers.items() if k not in _DROPPED_ON_REPLAY}
    reopened = await _reopen(sessions, letter.id)
    await publisher.publish(
        t.COMMANDS_EXCHANGE,
        letter.routing_key,
        letter.body,
        headers=headers,
        message_id=letter.message.message_id,
        correlation_id=letter.message.correlation_id,
        content_type=letter.message.content_type or "application/json",
        type_=letter.type,
    )
    await letter.message.ack()
    return {"id": letter.id, "replayed": True, "command_reopened": reopened}


def _select(letters: list[DeadLetter], args: argparse.Namespace) -> list[DeadLetter]:
    if getattr(args, "all", False):
        return letters
    wanted = set(getattr(args, "ids", None) or [])
    return [letter for letter in letters if letter.id in wanted]


async def run_dead_letters(settings: CommonSettings, args: argparse.Namespace) -> int:
    """Perform one dead-letter action; 0 on success, 1 when nothing matched."""
    connection = await connect(settings.amqp_url.get_secret_value(), name="dead-letters")
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        channel = await connection.channel()
        await declare_topology(channel, settings.partitions)
        letters = await browse(channel)
        if args.action == "list":
            print_rows([letter.row() for letter in letters], as_json=args.json)
            return 0
        chosen = _select(letters, args)
        if not chosen:
            print_rows([], as_json=args.json)
            return 1
        if args.action == "show":
            print_rows([letter.detail() for letter in chosen], as_json=True)
            return 0
        if args.action == "purge":
            for letter in chosen:
                await letter.message.ack()
            print_rows([{"id": x.id, "purged": True} for x in chosen], as_json=args.json)
            return 0
        await create_schema(engine)
        sessions = make_sessionmaker(engine)
        publisher = ConfirmedPublisher(connection, timeout=settings.publish_timeout_seconds)
        try:
            rows = [await _replay(letter, publisher, sessions) for letter in chosen]
        finally:
            await publisher.close()
        print_rows(rows, as_json=args.json)
        return 0
    finally:
        await connection.close()
        await engine.dispose()
