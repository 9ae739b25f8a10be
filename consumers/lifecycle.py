"""Telling apps what happens to servers and running commands, as it happens.

:class:`Announcer` publishes ``server.*`` events at once, recorded in the outbox first
(so the relay publishes any the broker did not confirm) and ``command.progressed``
best effort (the command's row holds the truth). :class:`CommandLifecycle` is the
:class:`~consumers.ports.CommandObserver` of one running command: it keeps the
command's ``progress``, the server's row, and announces the server's lifecycle.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Protocol

import structlog

from consumers.event_publisher import EventPublisher, PendingEvent
from consumers.ports import OutboxPort
from consumers.relay import OutboxDelivery
from runtime.bus.publisher import PublishFailed
from runtime.db.servers import ServerStore
from runtime.metrics import SERVERS_STOPPED
from schemas.commands import CommandMessage, utcnow
from schemas.events import EventKind
from schemas.lifecycle import (
    CommandProgress,
    CommandProgressed,
    EventData,
    ProgressPhase,
    ServerCullScheduled,
    ServerReady,
    ServerSpawnFailed,
    ServerStarting,
    ServerStopped,
    ServerStopping,
    StopReason,
)
from schemas.workspaces import Workspace

log = structlog.get_logger(__name__)

SERVER_EVENT_KINDS: dict[type[EventData], EventKind] = {
    ServerStarting: EventKind.SERVER_STARTING,
    ServerReady: EventKind.SERVER_READY,
    ServerSpawnFailed: EventKind.SERVER_SPAWN_FAILED,
    ServerStopping: EventKind.SERVER_STOPPING,
    ServerStopped: EventKind.SERVER_STOPPED,
    ServerCullScheduled: EventKind.SERVER_CULL_SCHEDULED,
}


class ProgressLog(Protocol):
    """Where a running command's progress is kept (``CommandStore.set_progress``)."""

    async def set_progress(self, command_id: uuid.UUID, progress: CommandProgress) -> None:
        """Show ``progress`` in the command's view."""
        ...


class Announcer:
    """Publishes lifecycle events now, each with an id stable for its cause."""

    def __init__(
        self, events: EventPublisher, outbox: OutboxPort, delivery: OutboxDelivery
    ) -> None:
        self._events = events
        self._outbox = outbox
        self._delivery = delivery

    async def server_event(
        self,
        data: EventData,
        *,
        app: str,
        caused_by: uuid.UUID,
        correlation_id: str | None = None,
    ) -> None:
        """Record ``data`` (a ``server.*`` event of ``data.user`` in ``app``) in the
        outbox and publish it; ``caused_by`` makes its id (same cause, same id)."""
        kind = SERVER_EVENT_KINDS[type(data)]
        message = self._events.message(
            PendingEvent(kind, data, subject=str(data.model_dump().get("user", ""))),
            caused_by=caused_by,
            correlation_id=correlation_id,
            app_id=app,
        )
        await self._outbox.add([message])
        await self._delivery.deliver([message], source="lifecycle")

    async def progressed(self, message: CommandMessage, progress: CommandProgress) -> None:
        """Publish ``command.progressed`` (best effort: a lost one costs nothing)."""
        data = CommandProgressed(
            command_id=message.id,
            command_type=message.command.type,
            user=message.user,
            progress=progress,
        )
        with contextlib.suppress(PublishFailed):
            await self._events.publish(
                PendingEvent(EventKind.COMMAND_PROGRESSED, data, subject=str(message.id)),
                caused_by=uuid.uuid4(),  # every step is a new event
                correlation_id=message.correlation_id,
                app_id=message.app,
            )


class CommandLifecycle:
    """The observer of one running command (see the module docstring)."""

    def __init__(
        self,
        message: CommandMessage,
        workspace: Workspace,
        announcer: Announcer,
        progress_log: ProgressLog,
        servers: ServerStore,
    ) -> None:
        self._message = message
        self._workspace = workspace
        self._announcer = announcer
        self._progress_log = progress_log
        self._servers = servers
        self._last: tuple[object, ...] | None = None

    async def _server_event(self, data: EventData) -> None:
        await self._announcer.server_event(
            data,
            app=self._message.app,
            caused_by=self._message.id,
            correlation_id=self._message.correlation_id,
        )

    async def progress(
        self,
        phase: ProgressPhase,
        *,
        message: str | None = None,
        position: int | None = None,
        percent: int | None = None,
    ) -> None:
        """Record and announce the command's progress, unless unchanged. A command that
        reported nothing before it writes (no wait, no spawn: it takes milliseconds)
        does not report ``writing`` either: its view goes from running to done."""
        key = (phase, message, position, percent)
        if key == self._last or (phase == ProgressPhase.WRITING and self._last is None):
            return
        self._last = key
        progress = CommandProgress(
            phase=phase,
            message=message[:500] if message else None,
            position=position,
            percent=None if percent is None else max(0, min(100, percent)),
            updated_at=utcnow(),
        )
        await self._progress_log.set_progress(self._message.id, progress)
        await self._announcer.progressed(self._message, progress)

    async def waiting_for_slot(self, position: int) -> None:
        """Progress ``waiting_for_spawn_slot`` with the place in line."""
        await self.progress(
            ProgressPhase.WAITING_FOR_SPAWN_SLOT,
            message=f"waiting for a spawn slot ({position} in line)",
            position=position,
        )

    async def starting(self) -> None:
        """``server.starting``, and progress ``spawning`` at 0 %."""
        await self._server_event(
            ServerStarting(user=self._message.user, command_id=self._message.id)
        )
        await self.progress(ProgressPhase.SPAWNING, message="server requested", percent=0)

    async def spawning(self, percent: int | None, message: str | None) -> None:
        """Progress ``spawning`` with the Hub's percentage and message."""
        await self.progress(ProgressPhase.SPAWNING, message=message, percent=percent)

    async def ready(self, url: str, seconds: float | None) -> None:
        """The server runs; ``server.ready`` if this command started it."""
        if seconds is None:
            return
        await self._servers.started(self._workspace, utcnow())
        await self._server_event(
            ServerReady(
                user=self._message.user,
                server_url=url,
                seconds=round(seconds, 3),
                command_id=self._message.id,
            )
        )

    async def spawn_failed(self, reason: str) -> None:
        """``server.spawn_failed`` with the Hub's reason."""
        await self._server_event(
            ServerSpawnFailed(
                user=self._message.user, reason=reason[:1000], command_id=self._message.id
            )
        )

    async def stopping(self, reason: StopReason) -> None:
        """The server leaves the running set (so the culler does not report it as
        stopped by the Hub), then ``server.stopping``."""
        await self._servers.stopped(self._workspace)
        await self._server_event(
            ServerStopping(user=self._message.user, reason=reason, command_id=self._message.id)
        )

    async def stopped(self, reason: StopReason, *, was_running: bool) -> None:
        """``server.stopped`` if a server was running."""
        if not was_running:
            return
        SERVERS_STOPPED.labels(reason.value).inc()
        await self._server_event(
            ServerStopped(user=self._message.user, reason=reason, command_id=self._message.id)
        )

    async def cull_called_off(self) -> None:
        """Forget the server's scheduled cull."""
        await self._servers.cancel_cull(self._workspace.name)


class QuietObserver:
    """A :class:`~consumers.ports.CommandObserver` that records and announces nothing
    (handlers run without a message, e.g. in unit tests)."""

    async def progress(
        self,
        phase: ProgressPhase,
        *,
        message: str | None = None,
        position: int | None = None,
        percent: int | None = None,
    ) -> None:
        """Ignored."""

    async def waiting_for_slot(self, position: int) -> None:
        """Ignored."""

    async def starting(self) -> None:
        """Ignored."""

    async def spawning(self, percent: int | None, message: str | None) -> None:
        """Ignored."""

    async def ready(self, url: str, seconds: float | None) -> None:
        """Ignored."""

    async def spawn_failed(self, reason: str) -> None:
        """Ignored."""

    async def stopping(self, reason: StopReason) -> None:
        """Ignored."""

    async def stopped(self, reason: StopReason, *, was_running: bool) -> None:
        """Ignored."""

    async def cull_called_off(self) -> None:
        """Ignored."""
