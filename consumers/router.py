"""Routing each message of the command partitions to its processor by kind.

The partitions carry two kinds of message (header ``x-orch-kind``): commands from
the gateway (the default when the header is absent) and contents notifications from
the hub service. Anything else is parked in the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import structlog

from consumers.ports import InboundMessage
from consumers.redelivery import Redelivery
from schemas import topology as t


class MessageHandler(Protocol):
    """Handles one message completely: acks it, or gives it back (nack) to the queue."""

    async def handle(self, incoming: InboundMessage) -> None:
        """Process ``incoming`` and settle it with the broker."""
        ...


class MessageRouter:
    """Dispatches each delivery to the handler registered for its kind."""

    def __init__(self, handlers: Mapping[str, MessageHandler], redelivery: Redelivery) -> None:
        self._handlers = dict(handlers)
        self._redelivery = redelivery

    async def handle(self, incoming: InboundMessage) -> None:
        """Pass ``incoming`` to its kind's handler; an unknown kind is dead-lettered."""
        structlog.contextvars.unbind_contextvars("command_id", "correlation_id", "user", "action")
        kind = (incoming.headers or {}).get(t.HEADER_KIND, t.KIND_COMMAND)
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self._redelivery.dead_letter(
                incoming, "unknown_kind", f"no handler for message kind {kind!r}"
            )
            await incoming.ack()
            return
        await handler.handle(incoming)
