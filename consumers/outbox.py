"""Where processed messages go next: result events, retry queues, the dead-letter queue."""

from __future__ import annotations

import uuid
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from runtime.bus.publisher import ConfirmedPublisher
from schemas import topology as t
from schemas.commands import CommandMessage
from schemas.events import (
    CommandError,
    CommandFailed,
    CommandSucceeded,
    EventKind,
    make_event,
)

CREDENTIAL_RESULT_KEYS = frozenset({"launch_url"})


class Outbox:
    """Publishes (with confirms) everything a consumer sends after handling a message."""

    def __init__(self, publisher: ConfirmedPublisher) -> None:
        self.publisher = publisher

    async def command_succeeded(self, message: CommandMessage, result: dict[str, Any]) -> None:
        """Publish ``command.succeeded``; its event id is derived from the command id.

        Credentials in the result (the one-time launch link) are left out: every
        subscriber of the bus sees events, so apps read those from the command status.
        """
        data = CommandSucceeded(
            command_id=message.id,
            command_type=message.command.type,
            user=message.user,
            result={k: v for k, v in result.items() if k not in CREDENTIAL_RESULT_KEYS},
        )
        await self._result(EventKind.COMMAND_SUCCEEDED, message, data)

    async def command_failed(self, message: CommandMessage, code: str, text: str) -> None:
        """Publish ``command.failed`` with a code and a message that says why."""
        data = CommandFailed(
            command_id=message.id,
            command_type=message.command.type,
            user=message.user,
            error=CommandError(code=code, message=text),
        )
        await self._result(EventKind.COMMAND_FAILED, message, data)

    async def _result(
        self, kind: EventKind, message: CommandMessage, data: CommandSucceeded | CommandFailed
    ) -> None:
        event = make_event(
            kind,
            data,
            subject=str(message.id),
            correlation_id=message.correlation_id,
            app_id=message.app,
        ).model_copy(update={"id": str(uuid.uuid5(message.id, kind.value))})
        await self.publisher.publish_event(kind, event)

    async def retry_later(
        self, incoming: AbstractIncomingMessage, delay: int, *, attempt: int
    ) -> None:
        """Send a copy through the retry queue for ``delay`` seconds (it comes back)."""
        headers = dict(incoming.headers or {})
        headers[t.HEADER_ATTEMPT] = attempt
        await self.publisher.publish(
            t.retry_exchange(delay),
            incoming.routing_key or "",
            incoming.body,
            headers=headers,
            message_id=incoming.message_id,
            correlation_id=incoming.correlation_id,
            content_type=incoming.content_type or "application/json",
            type_=incoming.type,
        )

    async def dead_letter(self, incoming: AbstractIncomingMessage, reason: str) -> None:
        """Park a copy in the dead-letter queue with the reason and where it came from."""
        headers = dict(incoming.headers or {})
        headers[t.HEADER_DEAD_REASON] = reason[:1000]
        headers[t.HEADER_ROUTING_KEY] = incoming.routing_key or ""
        await self.publisher.publish(
            t.DEAD_LETTER_EXCHANGE,
            incoming.routing_key or "",
            incoming.body,
            headers=headers,
            message_id=incoming.message_id,
            correlation_id=incoming.correlation_id,
            content_type=incoming.content_type or "application/octet-stream",
            type_=incoming.type,
        )
