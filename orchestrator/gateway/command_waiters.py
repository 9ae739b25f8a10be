"""Wake long-polling status requests when a command's result event arrives."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from aiohttp import web


class CommandWaiters:
    """Per-command wake-ups: :meth:`wait` returns early once :meth:`notify` is called."""

    def __init__(self) -> None:
        self._events: defaultdict[uuid.UUID, list[asyncio.Event]] = defaultdict(list)

    async def wait(self, command_id: uuid.UUID, seconds: float) -> bool:
        """Wait up to ``seconds`` for a notification; True if notified."""
        event = asyncio.Event()
        self._events[command_id].append(event)
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._events.get(command_id)
            if waiting is not None:
                waiting.remove(event)
                if not waiting:
                    del self._events[command_id]

    def notify(self, command_id: uuid.UUID) -> None:
        """Wake every request waiting for ``command_id``."""
        for event in self._events.get(command_id, []):
            event.set()


WAITERS = web.AppKey("waiters", CommandWaiters)
