"""Forwarding queued changes from a single-user server to the hub service.

One background task drains the :class:`CoalescingQueue` one change at a time (so
per-file order holds), POSTing each to ``{notify_url}/notify`` with the server's own
Hub token. While the service is down or answers 5xx, the change goes back to the
front and the task waits with backoff; a 4xx (other than 408/429) means the
notification itself is refused, so it is dropped and logged. Nothing here ever
raises into the contents manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiohttp

from hub_service.notify_queue import Backoff, CoalescingQueue, PendingChange
from schemas.notifications import ContentsNotification

RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class SenderConfig:
    """Where to send and as whom: the service URL, the server's token and its user."""

    notify_url: str
    api_token: str
    user: str
    queue_size: int = 1000
    request_timeout: float = 10.0


class NotificationSender:
    """Queues changes without waiting and delivers them from a background task."""

    def __init__(
        self, config: SenderConfig, log: logging.Logger, backoff: Backoff | None = None
    ) -> None:
        self._config = config
        self._log = log
        self._backoff = backoff or Backoff()
        self.queue = CoalescingQueue(config.queue_size)
        self.delivered = 0
        self.refused = 0
        self.retries = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, change: PendingChange) -> None:
        """Queue ``change`` and make sure the delivery task runs (call inside the loop)."""
        if not self.queue.put(change):
            self._log.warning(
                "save notification dropped: outbox full (%d dropped so far)", self.queue.dropped
            )
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the delivery task (pending changes are lost: they are only hints)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                change = self.queue.take()
                if change is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._deliver(session, change)

    async def _deliver(self, session: aiohttp.ClientSession, change: PendingChange) -> None:
        body = ContentsNotification(
            id=change.id,
            user=self._config.user,
            action=change.action,
            path=change.path,
            source_path=change.source_path,
            occurred_at=change.occurred_at,
            coalesced=change.coalesced,
        ).model_dump_json()
        status: int | None = None
        try:
            async with session.post(
                f"{self._config.notify_url.rstrip('/')}/notify",
                data=body,
                headers={
                    "Authorization": f"token {self._config.api_token}",
                    "Content-Type": "application/json",
                },
            ) as response:
                status = response.status
                detail = (await response.text())[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = type(exc).__name__
        if status is not None and status < 300:
            self.delivered += 1
            self._backoff.reset()
            return
        if status is not None and status < 500 and status not in RETRIED_STATUSES:
            self.refused += 1
            self._backoff.reset()
            self._log.warning(
                "save notification refused by the hub service (HTTP %d): %s", status, detail
            )
            return
        self.queue.put_back(change)
        self.retries += 1
        delay = self._backoff.next_delay()
        self._log.info(
            "hub service unavailable (%s); retrying in %.2fs (%d waiting)",
            status if status is not None else detail,
            delay,
            len(self.queue),
        )
        await asyncio.sleep(delay)
