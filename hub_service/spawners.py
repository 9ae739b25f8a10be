"""Local-process spawners that report their progress to the Hub's progress stream.

JupyterHub's progress stream (``GET /users/{name}/server/progress``) shows what the
spawner's ``progress()`` yields between "Server requested" and "ready"; the stock
local spawners yield nothing, so a client sees 0 % and then ready. These report what
really happens: the server process started, then the wait for it to answer HTTP
(the Hub stops reading the generator the moment the server is up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner

STARTED_PERCENT = 40
WAIT_STEP_SECONDS = 1.0
WAIT_PERCENT_STEP = 5
MAX_WAIT_PERCENT = 95


class _LaunchProgress:
    """Progress for a local spawner: ``start()`` marks when the process is launched."""

    _launched: asyncio.Event | None = None

    def _launch_event(self) -> asyncio.Event:
        if self._launched is None:
            self._launched = asyncio.Event()
        return self._launched

    async def start(self) -> Any:
        """Launch the server process (the local spawner's start), then mark it launched."""
        self._launch_event().clear()
        launched = await super().start()  # type: ignore[misc]
        self._launch_event().set()
        return launched

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Process launched, then waiting for the server to answer."""
        requested = time.monotonic()
        await self._launch_event().wait()
        pid = getattr(self, "pid", 0)
        yield {"progress": STARTED_PERCENT, "message": f"Server process started (pid {pid})"}
        percent = STARTED_PERCENT
        while True:  # the Hub waits for the server to answer; it stops iterating once up
            await asyncio.sleep(WAIT_STEP_SECONDS)
            percent = min(MAX_WAIT_PERCENT, percent + WAIT_PERCENT_STEP)
            waited = time.monotonic() - requested
            yield {
                "progress": percent,
                "message": f"Waiting for the server to answer ({waited:.1f} s)",
            }


class ProgressLocalProcessSpawner(_LaunchProgress, LocalProcessSpawner):  # type: ignore[misc]
    """``LocalProcessSpawner`` (a system account per user) with real progress events."""


class ProgressSimpleLocalProcessSpawner(_LaunchProgress, SimpleLocalProcessSpawner):  # type: ignore[misc]
    """``SimpleLocalProcessSpawner`` (one account for all) with real progress events."""
