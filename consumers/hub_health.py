"""Health of the configured Hubs: one consumer checks them, every consumer reads it.

:class:`HubHealth` runs in every consumer; the one holding the ``hub-health`` lease
pings every Hub each interval (one unretried API call), records the outcome in
``hub_status`` and reports what each Hub holds (``orch_hub_users``,
``orch_hub_servers_running``, ``orch_hub_spawns_in_progress``). A Hub that failed
``DOWN_AFTER_FAILURES`` checks in a row is marked down: new users are placed elsewhere
(:meth:`runtime.db.workspaces.WorkspaceStore.ensure` skips it) and commands of its
users wait (:class:`HubAvailability`) instead of spending their retries, since their
files live there; one good check brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import structlog

from consumers.errors import TransientError
from consumers.hubs import HubPorts
from consumers.ports import HubPort
from runtime.db.hub_status import HubStatusStore
from runtime.db.leases import JobLeases
from runtime.db.models import HubStatus
from runtime.metrics import HUB_SERVERS_RUNNING, HUB_SPAWNS_IN_PROGRESS, HUB_UP, HUB_USERS

log = structlog.get_logger(__name__)
LEASE_NAME = "hub-health"
DOWN_AFTER_FAILURES = 2
# what each Hub holds, reported with its health by the lease holder only
_LOAD_GAUGES = (HUB_USERS, HUB_SERVERS_RUNNING, HUB_SPAWNS_IN_PROGRESS)


class HubHealth:
    """See the module docstring; ``run`` until stopped, ``check_once`` for one pass."""

    def __init__(
        self,
        hubs: HubPorts,
        status: HubStatusStore,
        leases: JobLeases,
        *,
        interval: timedelta,
        holder: str,
        availability: HubAvailability | None = None,
    ) -> None:
        self._availability = availability
        self._hubs = hubs
        self._status = status
        self._leases = leases
        self._interval = interval
        self._holder = holder
        self._failures: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval`` until ``stop`` is set (errors are logged)."""
        structlog.contextvars.bind_contextvars(job="hub-health")
        while not stop.is_set():
            try:
                await self.check_once()
                if self._availability is not None:
                    await self._availability.refresh()  # what /readyz shows
            except Exception:
                log.exception("hub health pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval.total_seconds())
        with contextlib.suppress(Exception):
            await self._leases.release(LEASE_NAME, self._holder)

    async def check_once(self) -> bool:
        """Ping every Hub and record the outcomes if this process holds the lease;
        True if it did."""
        if not await self._leases.hold(LEASE_NAME, self._holder, self._interval * 3):
            for gauge in (HUB_UP, *_LOAD_GAUGES):
                gauge.clear()
            return False
        results = await asyncio.gather(
            *(self._check(name, ports.hub) for name, ports in self._hubs.items())
        )
        known = await self._status.statuses()
        for name, error in results:
            failures = 0 if error is None else self._failures.get(name, 0) + 1
            self._failures[name] = failures
            healthy = failures < DOWN_AFTER_FAILURES
            was = known.get(name)
            if not healthy and (was is None or was.healthy):
                log.warning("hub marked down", hub=name, error=error)
            elif healthy and was is not None and not was.healthy:
                log.info("hub answers again", hub=name)
            await self._status.record_check(name, healthy=healthy, error=error)
            HUB_UP.labels(name).set(1 if healthy else 0)
        counts = await self._status.counts(self._hubs.names[0])
        for name in self._hubs.names:
            HUB_USERS.labels(name).set(counts.users.get(name, 0))
            HUB_SERVERS_RUNNING.labels(name).set(counts.running.get(name, 0))
            HUB_SPAWNS_IN_PROGRESS.labels(name).set(counts.spawning.get(name, 0))
        return True

    @staticmethod
    async def _check(name: str, hub: HubPort) -> tuple[str, str | None]:
        """(name, None) when the Hub answered, else (name, why not)."""
        try:
            await hub.ping()
        except TransientError as exc:
            return name, exc.message[:500]
        return name, None


class HubAvailability:
    """Which Hubs are marked down, read from the database at most every ``ttl`` s."""

    def __init__(self, status: HubStatusStore, *, ttl: float = 2.0) -> None:
        self._status = status
        self._ttl = ttl
        self._seen: dict[str, HubStatus] = {}
        self._read_at = float("-inf")

    async def down(self, hub: str | None) -> str | None:
        """Why ``hub`` is marked down (its last check's error), or None when it is not."""
        if hub is None:
            return None
        if time.monotonic() - self._read_at > self._ttl:
            await self.refresh()
        row = self._seen.get(hub)
        if row is None or row.healthy:
            return None
        return row.error or "not answering"

    async def refresh(self) -> None:
        """Read every Hub's status now."""
        self._seen = await self._status.statuses()
        self._read_at = time.monotonic()

    def snapshot(self) -> dict[str, str]:
        """Each known Hub's state as last read (``up``, ``draining``, ``down: why``)."""
        states = {}
        for name, row in sorted(self._seen.items()):
            if not row.healthy:
                states[name] = f"down: {row.error or 'not answering'}"
            else:
                states[name] = "draining" if row.draining else "up"
        return states
