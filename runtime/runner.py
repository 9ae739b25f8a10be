"""Running an asyncio service until SIGINT/SIGTERM, shared by every entry point."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import uvloop


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new uvloop loop; SIGINT/SIGTERM set ``stop`` for a clean exit.

    uvloop roughly halves the event loop's own overhead per request and message. Files
    the process creates (the SQLite database and its journals, logs) are private to
    its account (umask 077): they hold commands, notebooks and key hashes.
    """
    os.umask(0o077)

    async def _runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    uvloop.run(_runner())
