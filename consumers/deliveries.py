"""Each delivery handled in a task of its own, which a lost channel does not cut short.

aio-pika (through aiormq) runs a consumer callback in a task of the channel, and
cancels that task when the channel or its connection closes: on a broker restart, a
lost cluster node or the process's own shutdown. A command cancelled there stops
wherever it was: between a Hub call and the record of its outcome, or inside a
database transaction, whose connection SQLAlchemy then terminates in the background.
:class:`Deliveries` runs the handling in a task it owns and has the callback only wait
for it (shielded): the handling goes on to its end, its ack or nack then fails on the
dead channel, and the broker delivers the message again, which the processor
recognises (a finished command only publishes what its outcome left in the outbox).
A handler that raises instead of settling its message has it given back to its queue.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiormq.exceptions import AMQPError

from consumers.ports import InboundMessage
from consumers.router import MessageHandler

log = structlog.get_logger(__name__)

# What settling a message raises once its channel is gone: aiormq's
# ChannelInvalidStateError is a RuntimeError, a lost connection an AMQPError.
CHANNEL_GONE = (AMQPError, RuntimeError, ConnectionError)


class Deliveries:
    """Handles every delivery with ``handler`` in a task that outlives its channel."""

    def __init__(self, handler: MessageHandler) -> None:
        self._handler = handler
        self._running: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """How many deliveries are being handled now."""
        return len(self._running)

    async def handle(self, incoming: InboundMessage) -> None:
        """The consumer callback: start the handling and wait for it (shielded)."""
        task = asyncio.create_task(self._settle(incoming))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        await asyncio.shield(task)

    async def _settle(self, incoming: InboundMessage) -> None:
        try:
            await self._handler.handle(incoming)
        except CHANNEL_GONE as exc:
            log.info(
                "message left for the broker to deliver again: its channel closed",
                error=type(exc).__name__,
            )
        except Exception:
            # Handlers settle their messages themselves; one that raised instead would
            # hold its message unacked (and its partition) until the channel closed.
            log.exception("handling a message failed; it goes back to its queue")
            with contextlib.suppress(Exception):
                await incoming.nack(requeue=True)

    async def drain(self, within: float) -> int:
        """Wait up to ``within`` seconds for the handlings in progress, then cancel the
        rest (the broker delivers their messages again); returns how many were cut."""
        running = set(self._running)
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning(
                "handlings cut at shutdown; their messages are delivered again", count=len(pending)
            )
        return len(pending)
