"""The events a handled message causes, as messages with ids stable across redeliveries.

One component for both processors: command results (``command.succeeded`` /
``command.failed``) and the events handlers and notifications produce
(``notebook.saved``, ``renamed``, ``deleted``). Every event id is derived from the
command or notification that caused it (``schemas.events.make_event``), so a message
handled twice publishes the same ids and subscribers can de-duplicate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from consumers.ports import BusPublisher
from runtime.bus.publisher import event_message
from runtime.outgoing import OutgoingMessage
from schemas.commands import CommandMessage
from schemas.events import (
    CommandError,
    CommandFailed,
    CommandSucceeded,
    EventKind,
    make_event,
)

CREDENTIAL_RESULT_KEYS = frozenset({"launch_url"})


@dataclass(frozen=True)
class PendingEvent:
    """An event to publish once the outcome that caused it is committed."""

    kind: EventKind
    data: Any
    subject: str
    # tells apart events of one kind and subject with the same cause (see make_event)
    key: str = ""


class EventPublisher:
    """Builds the messages of handled messages' events, and publishes them (confirms)."""

    def __init__(self, publisher: BusPublisher) -> None:
        self._publisher = publisher

    async def publish(
        self,
        pending: PendingEvent,
        *,
        caused_by: uuid.UUID,
        correlation_id: str | None,
        app_id: str | None,
    ) -> None:
        """Publish ``pending`` at once (see :meth:`message`)."""
        await self._publisher.publish_message(
            self.message(pending, caused_by=caused_by, correlation_id=correlation_id, app_id=app_id)
        )

    @staticmethod
    def message(
        pending: PendingEvent,
        *,
        caused_by: uuid.UUID,
        correlation_id: str | None,
        app_id: str | None,
    ) -> OutgoingMessage:
        """The message of ``pending``, its id derived from ``caused_by`` (a command or
        notification id), its kind, its subject and its key."""
        event = make_event(
            pending.kind,
            pending.data,
            subject=pending.subject,
            correlation_id=correlation_id,
            app_id=app_id,
            caused_by=caused_by,
            key=pending.key,
        )
        return event_message(pending.kind, event, caused_by=caused_by)

    def command_succeeded(self, message: CommandMessage, result: dict[str, Any]) -> OutgoingMessage:
        """The ``command.succeeded`` message.

        Credentials in the result (the one-time launch link) are left out: every
        subscriber of the bus sees events, so apps read those from the command status.
        """
        data = CommandSucceeded(
            command_id=message.id,
            command_type=message.command.type,
            user=message.user,
            result={k: v for k, v in result.items() if k not in CREDENTIAL_RESULT_KEYS},
        )
        return self._command_result(EventKind.COMMAND_SUCCEEDED, message, data)

    def command_failed(self, message: CommandMessage, code: str, text: str) -> OutgoingMessage:
        """The ``command.failed`` message, with a code and a message that says why."""
        data = CommandFailed(
            command_id=message.id,
            command_type=message.command.type,
            user=message.user,
            error=CommandError(code=code, message=text),
        )
        return self._command_result(EventKind.COMMAND_FAILED, message, data)

    def _command_result(
        self, kind: EventKind, message: CommandMessage, data: CommandSucceeded | CommandFailed
    ) -> OutgoingMessage:
        return self.message(
            PendingEvent(kind, data, subject=str(message.id)),
            caused_by=message.id,
            correlation_id=message.correlation_id,
            app_id=message.app,
        )
