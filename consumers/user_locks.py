"""Per-user FIFO locks: one user's messages are handled one at a time, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class UserLocks:
    """FIFO locks per user, shared by the command and notification processors.

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
