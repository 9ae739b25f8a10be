"""The bus message of a command, built the same way by the gateway and the relay.

A command's row holds everything its message carries (app, payload, correlation id,
acceptance time), so the relay can rebuild and publish it again, identical but for
the delivery, when the broker may have lost it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from runtime.outgoing import OutgoingMessage
from schemas.commands import BUS_COMMAND_ADAPTER, BusCommand, CommandMessage
from schemas.topology import (
    COMMANDS_EXCHANGE,
    HEADER_COMMAND_ID,
    HEADER_CORRELATION_ID,
    HEADER_KIND,
    KIND_COMMAND,
)
from schemas.workspaces import workspace_name


def command_message(
    *,
    command_id: uuid.UUID,
    app: str,
    correlation_id: str,
    accepted_at: datetime,
    command: BusCommand,
) -> OutgoingMessage:
    """The message that asks a consumer to perform ``command``.

    Routed by workspace: its commands and the saves made inside its server (the hub
    service routes those by the same Hub user) share one partition, in order.
    """
    message = CommandMessage(
        id=command_id,
        app=app,
        correlation_id=correlation_id,
        accepted_at=accepted_at,
        command=command,
    )
    text_id = str(command_id)
    return OutgoingMessage(
        message_id=text_id,
        exchange=COMMANDS_EXCHANGE,
        routing_key=workspace_name(app, command.user),
        body=message.model_dump_json().encode(),
        caused_by=command_id,
        correlation_id=correlation_id,
        type_=command.type.value,
        headers={
            HEADER_KIND: KIND_COMMAND,
            HEADER_COMMAND_ID: text_id,
            HEADER_CORRELATION_ID: correlation_id,
        },
    )


def stored_command_message(
    *,
    command_id: uuid.UUID,
    app: str,
    correlation_id: str,
    accepted_at: datetime,
    payload: dict[str, Any],
) -> OutgoingMessage:
    """:func:`command_message` of a recorded command (its payload validated again)."""
    return command_message(
        command_id=command_id,
        app=app,
        correlation_id=correlation_id,
        accepted_at=accepted_at,
        command=BUS_COMMAND_ADAPTER.validate_python(payload),
    )


class RecordedCommand(Protocol):
    """What a command's record says of it that its message carries."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def app(self) -> str: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


def recorded_command_message(record: RecordedCommand, command: BusCommand) -> OutgoingMessage:
    """:func:`command_message` of ``command``, just recorded as ``record``."""
    return command_message(
        command_id=record.id,
        app=record.app,
        correlation_id=record.correlation_id,
        accepted_at=record.created_at,
        command=command,
    )
