"""Handling one command message, from decoding to ack.

Flow: decode (poison → dead-letter queue) → begin the attempt in the command log →
find the command's workspace (the Hub user of its person in its app) →
defer while an earlier command of the same user is unfinished (keeps per-user order
even across retries) → run the handler → commit the outcome together with its events
(the outbox) → publish them → ack. Transient failures go through the retry queues,
then the dead-letter queue (:class:`~consumers.redelivery.Redelivery`); permanent ones
fail at once. The message is acked only after the outcome and its events are
committed; events the broker did not confirm stay in the outbox for the relay, and a
redelivered finished command publishes what its outcome left there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from pydantic import ValidationError

from consumers.errors import PermanentError, TransientError
from consumers.event_publisher import EventPublisher
from consumers.handlers import HANDLERS, CommandContext, Handler, Outcome, Ports
from consumers.hub_health import HubAvailability
from consumers.hubs import HubPorts
from consumers.lifecycle import QuietObserver
from consumers.moves import move_user
from consumers.ports import (
    CommandLog,
    CommandObserver,
    InboundMessage,
    MoveLog,
    OutboxPort,
    WorkspaceDirectory,
)
from consumers.redelivery import Redelivery, attempt_of
from consumers.relay import OutboxDelivery
from consumers.user_locks import UserLocks
from runtime.db.models import CommandStatus
from runtime.failpoints import Failpoints
from runtime.metrics import (
    COMMAND_QUEUE_WAIT_SECONDS,
    COMMAND_SECONDS,
    COMMANDS_FINISHED,
    labelled,
)
from schemas import topology as t
from schemas.commands import CommandMessage, CommandType, MoveUser, utcnow
from schemas.lifecycle import ProgressPhase
from schemas.workspaces import Workspace, workspace_name

log = structlog.get_logger(__name__)
ORDER_BARRIER_WINDOW = timedelta(minutes=10)
REQUEUE_PAUSE_SECONDS = 1.0
# Makes the observer of one running command (its progress, its server's lifecycle).
ObserverFactory = Callable[[CommandMessage, Workspace], CommandObserver]


def quiet_observers(_message: CommandMessage, _workspace: Workspace) -> CommandObserver:
    """An :data:`ObserverFactory` whose observers record and announce nothing."""
    return QuietObserver()


class CommandProcessor:
    """Performs command messages against the ports and records the outcome."""

    def __init__(
        self,
        ports: Ports | HubPorts,
        commands: CommandLog,
        workspaces: WorkspaceDirectory,
        events: EventPublisher,
        redelivery: Redelivery,
        locks: UserLocks,
        outbox: OutboxPort,
        delivery: OutboxDelivery,
        *,
        handlers: dict[CommandType, Handler] | None = None,
        requeue_pause_seconds: float = REQUEUE_PAUSE_SECONDS,
        failpoints: Failpoints | None = None,
        observers: ObserverFactory = quiet_observers,
        availability: HubAvailability | None = None,
        moves: MoveLog | None = None,
    ) -> None:
        self._observers = observers
        self._moves = moves
        self._availability = availability
        self._ports = ports if isinstance(ports, HubPorts) else HubPorts.single(ports)
        self._commands = commands
        self._workspaces = workspaces
        self._events = events
        self._outbox = outbox
        self._delivery = delivery
        self._failpoints = failpoints or Failpoints()
        self._redelivery = redelivery
        self._locks = locks
        self._handlers = HANDLERS if handlers is None else handlers
        self._requeue_pause = requeue_pause_seconds

    async def handle(self, incoming: InboundMessage) -> None:
        """Process ``incoming`` completely; ack it only once its outcome is durable.

        If the database or the bus fails before that, the message is given back to
        its queue (after a pause, so an outage is not a hot loop); the quorum queue's
        delivery limit parks it in the dead-letter queue if that keeps happening.
        """
        try:
            message = CommandMessage.model_validate_json(incoming.body)
        except (ValidationError, ValueError) as exc:
            reason = f"undecodable or schema-invalid command message: {str(exc)[:500]}"
            await self._redelivery.dead_letter(incoming, "poison", reason)
            await incoming.ack()
            return
        structlog.contextvars.bind_contextvars(
            command_id=str(message.id),
            correlation_id=message.correlation_id,
            user=message.user,
        )
        try:
            # the workspace's lock, which its Jupyter saves take too: applied in order
            async with self._locks.hold(workspace_name(message.app, message.user)):
                await self._process(incoming, message)
        except Exception:
            log.exception("processing failed before the outcome was recorded; requeueing")
            await asyncio.sleep(self._requeue_pause)
            with contextlib.suppress(Exception):
                await incoming.nack(requeue=True)
            return
        await incoming.ack()

    async def _process(self, incoming: InboundMessage, message: CommandMessage) -> None:
        record = await self._commands.begin_attempt(message.id)
        if record is None:
            await self._redelivery.dead_letter(
                incoming, "unknown_command", "no such command in the database"
            )
            return
        status = CommandStatus(record.status)
        if status == CommandStatus.REJECTED:
            log.info("skipping command the gateway rejected")
            return
        if status.is_final:
            # Redelivered after the commit: publish what the outcome left in the outbox.
            await self._delivery.deliver(
                await self._outbox.of_cause(message.id), source="redelivery"
            )
            return
        workspace = await self._workspaces.ensure(message.app, message.user)
        structlog.contextvars.bind_contextvars(hub=workspace.hub)
        observer = self._observers(message, workspace)
        earlier = await self._commands.earlier_unfinished(record)
        if earlier is not None and utcnow() - earlier.updated_at < ORDER_BARRIER_WINDOW:
            log.info("deferred behind an earlier command", earlier=str(earlier.id))
            await self._defer(
                incoming, message, observer, f"behind the user's earlier command {earlier.id}"
            )
            return
        for hub in self._hubs_used(message, workspace):
            if self._availability is not None and (why := await self._availability.down(hub)):
                # the user's files are on that Hub: wait for it without spending retries
                log.info("deferred: a Hub the command needs is down", down=hub, reason=why)
                await self._defer(
                    incoming, message, observer, f"waiting for Hub {hub} to answer ({why})"
                )
                return
        context = CommandContext(message.id, workspace.name, message.app, observer)
        await self._run(incoming, message, self._performer(message, workspace, context))

    def _hubs_used(self, message: CommandMessage, workspace: Workspace) -> list[str | None]:
        """The Hubs a command calls: the workspace's, and a move's target."""
        if isinstance(message.command, MoveUser):
            return [workspace.hub, message.command.to_hub]
        return [workspace.hub]

    def _performer(
        self, message: CommandMessage, workspace: Workspace, context: CommandContext
    ) -> Callable[[], Awaitable[Outcome]]:
        """What performs the command: its handler with the ports of the workspace's Hub,
        or, for a move, the move across Hubs."""
        command = message.command
        if isinstance(command, MoveUser):
            moves = self._moves
            if moves is None:
                raise RuntimeError("this consumer was built without a move log")
            return lambda: move_user(command, workspace, self._ports, moves, context)
        handler = self._handlers[command.type]
        return lambda: handler(command, self._ports.for_hub(workspace.hub), context)

    async def _defer(
        self,
        incoming: InboundMessage,
        message: CommandMessage,
        observer: CommandObserver,
        why: str,
    ) -> None:
        """Send the command round the shortest retry delay without counting an attempt,
        its progress ``queued`` saying ``why``."""
        await self._commands.requeued(message.id)
        await observer.progress(ProgressPhase.QUEUED, message=why)
        await self._redelivery.retry_later(
            incoming, t.RETRY_DELAYS_SECONDS[0], attempt=attempt_of(incoming)
        )

    async def _run(
        self,
        incoming: InboundMessage,
        message: CommandMessage,
        perform: Callable[[], Awaitable[Outcome]],
    ) -> None:
        started, started_at = time.monotonic(), utcnow()
        command_type = message.command.type
        try:
            outcome = await perform()
        except TransientError as exc:
            await self._commands.requeued(message.id)
            gave_up = await self._redelivery.retry_or_give_up(
                incoming, exc.message, label=command_type.value
            )
            if gave_up is not None:
                await self._fail(message, "retries_exhausted", gave_up, (started, started_at))
            return
        except PermanentError as exc:
            await self._fail(message, exc.code, exc.message, (started, started_at))
            return
        except Exception as exc:
            log.exception("handler crashed")
            reason = f"handler crashed: {type(exc).__name__}: {str(exc)[:300]}"
            await self._redelivery.dead_letter(incoming, "handler_crashed", reason)
            text = f"internal error: {type(exc).__name__}"
            await self._fail(message, "internal_error", text, (started, started_at))
            return
        outgoing = [
            self._events.message(
                event,
                caused_by=message.id,
                correlation_id=message.correlation_id,
                app_id=message.app,
            )
            for event in outcome.events
        ]
        outgoing.append(self._events.command_succeeded(message, outcome.result))
        await self._commands.finish(
            message.id, CommandStatus.SUCCEEDED, result=outcome.result, outbox=outgoing
        )
        self._failpoints.hit(f"after-commit:{command_type.value}")
        seconds = _observe(message, CommandStatus.SUCCEEDED, started, started_at)
        await self._delivery.deliver(outgoing, source="commit")
        log.info("command succeeded", type=command_type.value, seconds=round(seconds, 3))

    async def _fail(
        self,
        message: CommandMessage,
        code: str,
        text: str,
        started: tuple[float, datetime],
    ) -> None:
        error = {"code": code, "message": text}
        outgoing = [self._events.command_failed(message, code, text)]
        await self._commands.finish(message.id, CommandStatus.FAILED, error=error, outbox=outgoing)
        _observe(message, CommandStatus.FAILED, *started)
        await self._delivery.deliver(outgoing, source="commit")
        log.warning("command failed", type=message.command.type.value, code=code, error=text)


def _observe(
    message: CommandMessage, outcome: CommandStatus, started: float, started_at: datetime
) -> float:
    """Count a finished command; observe its run time and queue wait. Returns the run time."""
    kind = message.command.type.value
    seconds = time.monotonic() - started
    labelled(COMMANDS_FINISHED, kind, outcome.value).inc()
    labelled(COMMAND_SECONDS, kind, outcome.value).observe(seconds)
    waited = max(0.0, (started_at - message.accepted_at).total_seconds())
    labelled(COMMAND_QUEUE_WAIT_SECONDS, kind, outcome.value).observe(waited)
    return seconds
