"""The orchestrator's own commands (``cull-server``, ``move-user``): recorded in the
command log like an app's, then published to the user's partition, so they run in
order with the user's other commands and are never lost."""

from __future__ import annotations

import uuid
from typing import Protocol

from runtime.bus.command_messages import recorded_command_message
from runtime.db.command_records import NewCommand
from runtime.db.commands import Accepted, CommandStore
from runtime.outgoing import OutgoingMessage
from schemas.commands import BusCommand


class MessagePublisher(Protocol):
    """Publishes one prepared message with a broker confirm."""

    async def publish_message(self, message: OutgoingMessage) -> None:
        """Publish ``message``; raises when the broker did not confirm it."""
        ...


async def submit_internal(
    commands: CommandStore,
    publisher: MessagePublisher,
    *,
    app: str,
    command: BusCommand,
    idempotency_key: str,
    correlation_prefix: str,
) -> Accepted:
    """Record ``command`` for ``app`` under ``idempotency_key`` and publish it if new.

    Submitting the same key again returns the earlier command and publishes nothing.
    A command recorded but not confirmed by the broker stays ``accepted``; the relay
    publishes it again later (:mod:`consumers.relay`).
    """
    new = NewCommand(
        app=app,
        type=command.type.value,
        user=command.user,
        payload=command.model_dump(mode="json"),
        idempotency_key=idempotency_key,
        correlation_id=f"{correlation_prefix}-{uuid.uuid4()}",
    )
    accepted = await commands.record(new)
    if accepted.created:
        await publisher.publish_message(recorded_command_message(new, command))
    return accepted
