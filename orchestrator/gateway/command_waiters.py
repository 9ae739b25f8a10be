"""Wake long-polling status requests when a command's result event arrives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


class CommandWaiters:
    """Per-command wake-ups for long-polls, set by the result events the gateway hears.

    Watch *before* reading the command's status, so that a result arriving between
    the read and the wait still wakes the request::

        with waiters.watch(command_id) as finished:
            record = await store.get(command_id)
            ...
            await finished.wait()
    """

    def __init__(self) -> None:
        self._events: dict[uuid.UUID, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, command_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set by every :meth:`notify` for ``command_id`` while the block runs."""
        event = asyncio.Event()
        self._events.setdefault(command_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._events.get(command_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[command_id]

    def notify(self, command_id: uuid.UUID) -> None:
        """Wake every request watching ``command_id`` (no-op when nobody watches)."""
        for event in self._events.get(command_id, ()):
            event.set()

    def __len__(self) -> int:
        """How many commands are being watched."""
        return len(self._events)


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it was set (and clear it again)."""
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    event.clear()
    return True


WAITERS = web.AppKey("waiters", CommandWaiters)
