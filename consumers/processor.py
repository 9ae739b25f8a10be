"""Handling one command message, from decoding to ack.

Flow: decode (poison → dead-letter queue) → begin the attempt in the DB → defer
while an earlier command of the same user is unfinished (keeps per-user order even
across retries) → run the handler → commit the outcome → publish the result event →
ack. Transient failures go through the retry queues, then the dead-letter queue;
permanent ones fail at once. The message is acked only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from consumers.errors import CommandError, PermanentError, TransientError
from consumers.handlers import HANDLERS, Ports
from consumers.outbox import Outbox
from runtime.db.commands import CommandStore
from runtime.db.models import CommandStatus
from runtime.metrics import COMMAND_RETRIES, COMMANDS_FINISHED, DEAD_LETTERS
from schemas import topology as t
from schemas.commands import CommandMessage, utcnow

log = structlog.get_logger(__name__)
ORDER_BARRIER_WINDOW = timedelta(minutes=10)
REQUEUE_PAUSE_SECONDS = 1.0


class CommandProcessor:
    """Performs command messages against the ports and records the outcome."""

    def __init__(
        self,
        ports: Ports,
        commands: CommandStore,
        outbox: Outbox,
        notifications: NotificationHandler | None = None,
    ) -> None:
        self._ports = ports
        self._commands = commands
        self._outbox = outbox
        self._notifications = notifications
        self._user_locks = UserLocks()

    async def handle(self, incoming: AbstractIncomingMessage) -> None:
        """Process ``incoming`` completely; ack it only once its outcome is durable."""
        structlog.contextvars.unbind_contextvars("command_id", "correlation_id", "user")
        kind = (incoming.headers or {}).get(t.HEADER_KIND, t.KIND_COMMAND)
        if kind == t.KIND_NOTIFICATION and self._notifications is not None:
            await self._notifications.handle(incoming, self._user_locks)
            return
        try:
            message = CommandMessage.model_validate_json(incoming.body)
        except (ValidationError, ValueError) as exc:
            reason = f"undecodable or schema-invalid command message: {str(exc)[:500]}"
            log.warning("poison message dead-lettered", reason=reason)
            await self._dead_letter(incoming, "poison", reason)
            await incoming.ack()
            return
        structlog.contextvars.bind_contextvars(
            command_id=str(message.id),
            correlation_id=message.correlation_id,
            user=message.user,
        )
        try:
            async with self._user_locks.hold(message.user):
                await self._process(incoming, message)
        except Exception:
            # The DB or the bus failed before the outcome was durable: give the message
            # back (after a pause, so an outage is not a hot loop); the quorum queue's
            # delivery limit parks it in the dead-letter queue if this keeps happening.
            log.exception("processing failed before the outcome was recorded; requeueing")
            await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
            with contextlib.suppress(Exception):
                await incoming.nack(requeue=True)
            return
        await incoming.ack()

    async def _process(self, incoming: AbstractIncomingMessage, message: CommandMessage) -> None:
        record = await self._commands.begin_attempt(message.id)
        if record is None:
            await self._dead_letter(incoming, "unknown_command", "no such command in the database")
            log.warning("unknown command dead-lettered")
            return
        status = CommandStatus(record.status)
        if status == CommandStatus.REJECTED:
            log.info("skipping command the gateway rejected")
            return
        if status.is_final:
            # Redelivered after the commit: make sure the result event went out.
            await self._publish_result(message, record.result, record.error)
            return
        earlier = await self._commands.earlier_unfinished(record)
        if earlier is not None and utcnow() - earlier.updated_at < ORDER_BARRIER_WINDOW:
            log.info("deferred behind an earlier command", earlier=str(earlier.id))
            await self._commands.requeued(message.id)
            await self._outbox.retry_later(
                incoming, t.RETRY_DELAYS_SECONDS[0], attempt=_attempt(incoming)
            )
            return
        await self._run(incoming, message)

    async def _run(self, incoming: AbstractIncomingMessage, message: CommandMessage) -> None:
        started = time.monotonic()
        handler = HANDLERS[message.command.type]
        try:
            outcome = await handler(message.command, self._ports, message.id)
        except TransientError as exc:
            await self._transient(incoming, message, exc)
            return
        except PermanentError as exc:
            await self._fail(message, exc.code, exc.message)
            return
        except Exception as exc:
            log.exception("handler crashed")
            reason = f"handler crashed: {type(exc).__name__}: {str(exc)[:300]}"
            await self._dead_letter(incoming, "handler_crashed", reason)
            await self._fail(message, "internal_error", f"internal error: {type(exc).__name__}")
            return
        await self._commands.finish(message.id, CommandStatus.SUCCEEDED, result=outcome.result)
        COMMANDS_FINISHED.labels(message.command.type.value, CommandStatus.SUCCEEDED.value).inc()
        for event in outcome.events:
            await self._outbox.publisher.publish_event(
                event.kind, event.envelope(message.correlation_id, message.app)
            )
        await self._outbox.command_succeeded(message, outcome.result)
        log.info(
            "command succeeded",
            type=message.command.type.value,
            seconds=round(time.monotonic() - started, 3),
        )

    async def _transient(
        self, incoming: AbstractIncomingMessage, message: CommandMessage, exc: CommandError
    ) -> None:
        attempt = _attempt(incoming) + 1
        delay = t.retry_delay_for(attempt)
        if delay is None:
            reason = f"gave up after {attempt} rounds of retries: {exc.message}"
            await self._dead_letter(incoming, "retries_exhausted", reason)
            await self._fail(message, "retries_exhausted", reason)
            return
        log.warning("transient failure, retrying later", delay=delay, error=exc.message)
        await self._commands.requeued(message.id)
        await self._outbox.retry_later(incoming, delay, attempt=attempt)
        COMMAND_RETRIES.labels(message.command.type.value).inc()

    async def _dead_letter(self, incoming: AbstractIncomingMessage, kind: str, reason: str) -> None:
        await self._outbox.dead_letter(incoming, reason)
        DEAD_LETTERS.labels(kind).inc()

    async def _fail(self, message: CommandMessage, code: str, text: str) -> None:
        error = {"code": code, "message": text}
        await self._commands.finish(message.id, CommandStatus.FAILED, error=error)
        COMMANDS_FINISHED.labels(message.command.type.value, CommandStatus.FAILED.value).inc()
        await self._outbox.command_failed(message, code, text)
        log.warning("command failed", type=message.command.type.value, code=code, error=text)

    async def _publish_result(
        self,
        message: CommandMessage,
        result: dict[str, object] | None,
        error: dict[str, str] | None,
    ) -> None:
        if error is not None:
            await self._outbox.command_failed(message, error["code"], error["message"])
        else:
            await self._outbox.command_succeeded(message, dict(result or {}))


class NotificationHandler(Protocol):
    """Handles contents notifications from Jupyter that arrive on the command partitions."""

    async def handle(self, incoming: AbstractIncomingMessage, locks: UserLocks) -> None:
        """Process and ack (or dead-letter) ``incoming`` under the user's lock."""


class UserLocks:
    """FIFO locks per user: one user's messages run one at a time, in arrival order.

    Messages of one partition arrive in acceptance order; different users run
    concurrently up to the channel's prefetch.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, user: str) -> AsyncIterator[None]:
        """Hold ``user``'s lock (created on first use, dropped when nobody waits)."""
        lock, users = self._locks.get(user, (asyncio.Lock(), 0))
        self._locks[user] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user]
            if users == 1:
                del self._locks[user]
            else:
                self._locks[user] = (lock, users - 1)


def _attempt(incoming: AbstractIncomingMessage) -> int:
    value = (incoming.headers or {}).get(t.HEADER_ATTEMPT, 0)
    return value if isinstance(value, int) else 0
