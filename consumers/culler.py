"""Idle culling owned by the orchestrator, and servers that stop by themselves.

One consumer at a time (a lease in the database) looks every ``interval``:

- it compares the servers it knows running with the Hub's list: one the Hub no longer
  has stopped without the orchestrator (``server.stopped``, reason ``hub``); a ready
  server of a known workspace it did not know is taken in;
- for each running server it reads the server's own ``last_activity`` (what its user
  did: API requests of the pages, kernels, terminals; the orchestrator's calls carry
  ``no_track_activity`` and do not count) and applies its app's policy: idle for
  ``idle_timeout`` or older than ``max_age`` → ``server.cull_scheduled`` with a
  deadline ``grace`` ahead; active again before the deadline → called off; deadline
  passed → a ``cull-server`` command is recorded and published, so the cull waits its
  turn behind the user's earlier commands like any command.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from consumers.errors import PermanentError, TransientError
from consumers.hubs import HubPorts
from consumers.lifecycle import Announcer
from consumers.ports import BusPublisher, RunningServer, WorkspaceDirectory
from runtime.db.apps import AppStore, CullPolicy
from runtime.db.commands import CommandStore
from runtime.db.leases import JobLeases
from runtime.db.models import ServerRecord
from runtime.db.servers import ScheduledCull, ServerStore
from runtime.internal_commands import submit_internal
from runtime.metrics import SERVERS_RUNNING, SERVERS_STOPPED
from schemas.commands import CullServer, utcnow
from schemas.lifecycle import CullReason, ServerCullScheduled, ServerStopped, StopReason

log = structlog.get_logger(__name__)
LEASE_NAME = "culler"
# A server the orchestrator saw stopping is not taken in again before this (its stop
# is still under way).
ADOPT_AFTER = timedelta(seconds=60)
EVENT_NAMESPACE = uuid.UUID("5b0c3a52-52a4-4a57-9b8e-7a8f3f1f6c11")


@dataclass(frozen=True)
class Policy:
    """A culling policy in effect, in seconds; 0 turns a rule off."""

    idle_timeout: int
    max_age: int
    grace: int

    @classmethod
    def of(cls, configured: CullPolicy | None, defaults: Policy) -> Policy:
        """The app's policy, each unset field taken from ``defaults``."""
        if configured is None:
            return defaults

        def pick(value: int | None, default: int) -> int:
            return default if value is None else value

        return cls(
            pick(configured.idle_timeout_seconds, defaults.idle_timeout),
            pick(configured.max_age_seconds, defaults.max_age),
            pick(configured.cull_grace_seconds, defaults.grace),
        )


def cull_due(
    policy: Policy,
    now: datetime,
    started_at: datetime | None,
    last_activity: datetime | None,
) -> CullReason | None:
    """Why a running server should be culled now, or None (pure)."""
    age = None if started_at is None else now - started_at
    if policy.max_age and age is not None and age >= timedelta(seconds=policy.max_age):
        return CullReason.MAX_AGE
    since = last_activity or started_at
    idle = None if since is None else now - since
    if policy.idle_timeout and idle is not None and idle >= timedelta(seconds=policy.idle_timeout):
        return CullReason.IDLE
    return None


class Culler:
    """See the module docstring; ``run`` until stopped, ``run_once`` for one look."""

    def __init__(
        self,
        *,
        hubs: HubPorts,
        servers: ServerStore,
        workspaces: WorkspaceDirectory,
        apps: AppStore,
        commands: CommandStore,
        publisher: BusPublisher,
        leases: JobLeases,
        announcer: Announcer,
        defaults: Policy,
        interval: timedelta,
        holder: str,
    ) -> None:
        self._hubs = hubs
        self._servers = servers
        self._workspaces = workspaces
        self._apps = apps
        self._commands = commands
        self._publisher = publisher
        self._leases = leases
        self._announcer = announcer
        self._defaults = defaults
        self._interval = interval
        self._holder = holder
        # Hub users seen running that are no app's workspace: a workspace is recorded
        # before its Hub user is created, so such a user never becomes one.
        self._not_ours: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Look every ``interval`` until ``stop`` is set (errors are logged, not fatal)."""
        structlog.contextvars.bind_contextvars(job="culler")
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("culler pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval.total_seconds())
        with contextlib.suppress(Exception):
            await self._leases.release(LEASE_NAME, self._holder)

    async def run_once(self) -> bool:
        """One pass if this process holds the lease; True if it did."""
        if not await self._leases.hold(LEASE_NAME, self._holder, self._interval * 3):
            SERVERS_RUNNING.clear()
            return False
        known = {r.workspace: r for r in await self._servers.running()}
        active, every_hub_answered = await self._active_servers()
        if every_hub_answered:  # else a silent Hub's servers would look stopped
            await self._notice_stopped(known, active)
        running = await self._take_in(known, active)
        policies = await self._apps.cull_policies()
        counts: dict[str, int] = {}
        for record in running.values():
            counts[record.app] = counts.get(record.app, 0) + 1
            policy = Policy.of(policies.get(record.app), self._defaults)
            try:
                await self._consider(record, policy)
            except (TransientError, PermanentError) as exc:
                log.info("server skipped this pass", workspace=record.workspace, error=str(exc))
        SERVERS_RUNNING.clear()
        for app, count in counts.items():
            SERVERS_RUNNING.labels(app).set(count)
        return True

    async def _active_servers(self) -> tuple[dict[str, RunningServer], bool]:
        """Every Hub's running servers by Hub user, and whether every Hub answered."""
        active: dict[str, RunningServer] = {}
        answered = True
        for name, ports in self._hubs.items():
            try:
                active.update({s.user: s for s in await ports.hub.running_servers()})
            except TransientError as exc:
                answered = False
                log.info("Hub skipped this pass", hub=name, error=str(exc))
        return active, answered

    async def _notice_stopped(
        self, known: dict[str, ServerRecord], active: dict[str, RunningServer]
    ) -> None:
        for name, record in known.items():
            if name in active:
                continue
            if not await self._servers.stopped_by_hub(name):
                continue  # the orchestrator stopped it meanwhile
            SERVERS_STOPPED.labels(StopReason.HUB.value).inc()
            log.info("server stopped outside the orchestrator", workspace=name)
            started = record.started_at.isoformat() if record.started_at else ""
            await self._announcer.server_event(
                ServerStopped(user=record.user, reason=StopReason.HUB),
                app=record.app,
                caused_by=uuid.uuid5(EVENT_NAMESPACE, f"{name}:stopped:{started}"),
            )

    async def _take_in(
        self, known: dict[str, ServerRecord], active: dict[str, RunningServer]
    ) -> dict[str, ServerRecord]:
        running = {n: r for n, r in known.items() if n in active}
        now = utcnow()
        for name, server in active.items():
            if name in running or not server.ready or name in self._not_ours:
                continue
            workspace = await self._workspaces.owner(name)
            if workspace is None:
                self._not_ours.add(name)  # a Hub user no app owns
                continue
            record = await self._servers.get(name)
            if record is not None and now - record.updated_at < ADOPT_AFTER:
                continue
            await self._servers.started(workspace, server.started or now)
            if (adopted := await self._servers.get(name)) is not None:
                running[name] = adopted
        return running

    async def _consider(self, record: ServerRecord, policy: Policy) -> None:
        now = utcnow()
        if record.cull_deadline is None and cull_due(policy, now, record.started_at, None) is None:
            return  # not up long enough to be idle or old: no need to ask the server
        workspace = await self._workspaces.owner(record.workspace)
        contents = self._hubs.for_hub(workspace.hub if workspace else None).contents
        last_activity = await contents.last_activity(record.workspace)
        await self._servers.seen_active(record.workspace, last_activity)
        if record.cull_command_id is not None:
            return  # the cull is in the user's command order
        if record.cull_deadline is not None and record.cull_scheduled_at is not None:
            came_back = last_activity is not None and last_activity > record.cull_scheduled_at
            if record.cull_reason == CullReason.IDLE.value and came_back:
                await self._servers.cancel_cull(record.workspace)
                log.info("cull called off: user active", workspace=record.workspace)
            elif now >= record.cull_deadline:
                await self._submit(
                    record, CullReason(record.cull_reason or "idle"), record.cull_scheduled_at
                )
            return
        reason = cull_due(policy, now, record.started_at, last_activity)
        if reason is None:
            return
        cull = ScheduledCull(reason.value, now, now + timedelta(seconds=policy.grace))
        if not await self._servers.schedule_cull(record.workspace, cull):
            return
        log.info("cull scheduled", workspace=record.workspace, reason=reason.value)
        await self._announcer.server_event(
            ServerCullScheduled(
                user=record.user,
                reason=reason,
                deadline=cull.deadline,
                last_activity=last_activity,
                started_at=record.started_at,
            ),
            app=record.app,
            caused_by=uuid.uuid5(EVENT_NAMESPACE, f"{record.workspace}:cull:{now.isoformat()}"),
        )
        if policy.grace == 0:
            await self._submit(record, reason, now)

    async def _submit(
        self, record: ServerRecord, reason: CullReason, scheduled_at: datetime
    ) -> None:
        """Record the ``cull-server`` command and publish it (the relay publishes it
        again if the broker loses it)."""
        command = CullServer(user=record.user, reason=reason.value, scheduled_at=scheduled_at)
        accepted = await submit_internal(
            self._commands,
            self._publisher,
            app=record.app,
            command=command,
            idempotency_key=f"cull:{record.workspace}:{scheduled_at.isoformat()}",
            correlation_prefix="cull",
        )
        await self._servers.cull_submitted(record.workspace, accepted.record.id)
        if accepted.created:
            log.info(
                "cull submitted",
                workspace=record.workspace,
                command_id=str(accepted.record.id),
                correlation_id=accepted.record.correlation_id,
            )
