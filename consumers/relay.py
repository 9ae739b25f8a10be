"""Getting recorded messages onto the bus: at once after a commit, and again by the relay.

:class:`OutboxDelivery` publishes the messages an outcome recorded in the outbox right
after the commit, and forgets each once the broker confirmed it. A failure leaves them
in the outbox. :class:`Relay` runs in every consumer process: at start-up and every
``interval`` it publishes outbox messages older than a grace period, and re-publishes
the messages of commands left ``accepted`` or ``running`` for longer than any retry
or attempt takes, whose message the broker may have lost (a restart without its data,
a purged queue). Claims in the database keep two relays from taking the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog

from consumers.ports import BusPublisher, CommandLog, OutboxPort
from runtime.bus.command_messages import stored_command_message
from runtime.bus.publisher import PublishFailed
from runtime.metrics import (
    COMMANDS_REPUBLISHED,
    COMMANDS_WAITING,
    OLDEST_WAITING_COMMAND_SECONDS,
    OUTBOX_PUBLISHED,
)
from runtime.outgoing import OutgoingMessage
from schemas.commands import utcnow

log = structlog.get_logger(__name__)
BATCH = 200


class OutboxDelivery:
    """Publishes outbox messages with confirms and removes the confirmed ones."""

    def __init__(self, publisher: BusPublisher, outbox: OutboxPort) -> None:
        self._publisher = publisher
        self._outbox = outbox

    async def deliver(self, messages: Sequence[OutgoingMessage], *, source: str) -> bool:
        """Publish ``messages`` in order; True when all were confirmed (and removed).

        Stops at the first the broker does not confirm: it and the rest stay in the
        outbox for the relay. ``source`` labels the metric (``commit``, ``relay``).
        """
        confirmed: list[str] = []
        try:
            for message in messages:
                await self._publisher.publish_message(message)
                confirmed.append(message.message_id)
        except PublishFailed as exc:
            log.warning("outbox messages left for the relay", reason=str(exc))
            return False
        finally:
            if confirmed:
                await self._outbox.remove(confirmed)
                OUTBOX_PUBLISHED.labels(source).inc(len(confirmed))
        return True


@dataclass(frozen=True)
class RelayPolicy:
    """When the relay acts: how often, and how old a row must be to count as lost."""

    interval: timedelta
    outbox_grace: timedelta
    stale_accepted: timedelta
    stale_running: timedelta
    max_attempts: int
    waiting_report: timedelta = timedelta(seconds=90)


class Relay:
    """Publishes what a crash or a broker loss left behind (see the module docstring)."""

    def __init__(
        self,
        policy: RelayPolicy,
        outbox: OutboxPort,
        commands: CommandLog,
        publisher: BusPublisher,
    ) -> None:
        self._policy = policy
        self._outbox = outbox
        self._commands = commands
        self._publisher = publisher
        self._delivery = OutboxDelivery(publisher, outbox)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass at once, then every ``interval`` until ``stop``; a failed pass is logged
        and tried again next time (the database or the broker may be away)."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("relay pass failed; trying again later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._policy.interval.total_seconds()):
                    await stop.wait()

    async def run_once(self) -> tuple[int, int]:
        """One pass; returns (outbox messages published, commands re-published)."""
        messages = await self._outbox.claim_stale(self._policy.outbox_grace, BATCH)
        if messages:
            await self._delivery.deliver(messages, source="relay")
            log.info("relay published outbox messages", count=len(messages))
        stale = await self._commands.claim_stale(
            accepted_for=self._policy.stale_accepted,
            running_for=self._policy.stale_running,
            limit=BATCH,
            max_attempts=self._policy.max_attempts,
        )
        republished = 0
        for record in stale:
            message = stored_command_message(
                command_id=record.id,
                app=record.app,
                correlation_id=record.correlation_id,
                accepted_at=record.created_at,
                payload=record.payload,
            )
            try:
                await self._publisher.publish_message(message)
            except PublishFailed as exc:
                log.warning("relay could not re-publish; next pass", reason=str(exc))
                break
            republished += 1
            COMMANDS_REPUBLISHED.labels(record.type).inc()
            log.warning(
                "re-published a command the broker may have lost",
                command_id=str(record.id),
                status=record.status,
                attempts=record.attempts,
            )
        await self._report_waiting()
        return len(messages), republished

    async def _report_waiting(self) -> None:
        """Feed the gauges of commands accepted and untouched past the report bound."""
        count, oldest = await self._commands.waiting(self._policy.waiting_report)
        COMMANDS_WAITING.set(count)
        age = 0.0 if oldest is None else (utcnow() - oldest).total_seconds()
        OLDEST_WAITING_COMMAND_SECONDS.set(age)
