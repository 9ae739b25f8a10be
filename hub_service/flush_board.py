"""The flush board: which pages wait, which flushes are pending, who reported.

Pure asyncio bookkeeping behind the bridge endpoints (``hub_service.bridge_api``):
a flush gets the next id and wakes the waiting pages; it completes when every page
that was connected reported, or at its timeout. A page is connected while its wait is
in flight or was seen in the last ``PRESENCE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PRESENCE_SECONDS = 30.0


@dataclass(frozen=True)
class FailedSave:
    """A document a page could not save, and why (as the page words it)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FlushOutcome:
    """What one flush achieved: how many pages it waited for, how many answered."""

    flush: int
    pages: int
    reported: int
    saved: tuple[str, ...]
    failed: tuple[FailedSave, ...]

    def as_json(self) -> dict[str, Any]:
        """The HTTP answer of ``POST flush``."""
        return {
            "flush": self.flush,
            "pages": self.pages,
            "reported": self.reported,
            "saved": list(self.saved),
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
        }


class UnknownFlush(ValueError):
    """A page reported a flush id that was never issued."""


@dataclass
class _PendingFlush:
    id: int
    expected: set[str]
    reporters: set[str] = field(default_factory=set)
    saved: dict[str, None] = field(default_factory=dict)  # ordered set
    failed: dict[FailedSave, None] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        if self.expected <= self.reporters:
            self.complete.set()

    def outcome(self) -> FlushOutcome:
        return FlushOutcome(
            flush=self.id,
            pages=len(self.expected),
            reported=len(self.reporters & self.expected),
            saved=tuple(self.saved),
            failed=tuple(self.failed),
        )


class FlushBoard:
    """Flush ids, the pages waiting for them and their reports; no I/O, one event loop.

    Ids start at 1 and only grow. A report for id N answers every pending flush up to N
    (a page that saved for a newer flush saved for the older ones too). A page that
    reports without having been counted as connected is counted from then on.
    """

    def __init__(
        self,
        *,
        presence_seconds: float = PRESENCE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._presence_seconds = presence_seconds
        self._clock = clock
        self._latest = 0
        self._announced = asyncio.Event()  # set (and replaced) when a flush is created
        self._polling: Counter[str] = Counter()
        self._seen: dict[str, float] = {}
        self._pending: dict[int, _PendingFlush] = {}

    @property
    def latest(self) -> int:
        """The newest flush id (0 before the first flush)."""
        return self._latest

    def connected(self) -> set[str]:
        """Pages with a wait in flight or seen within the presence window."""
        now = self._clock()
        for page, seen in list(self._seen.items()):
            if not self._polling[page] and now - seen > self._presence_seconds:
                del self._seen[page]
                del self._polling[page]
        return set(self._seen)

    async def wait(self, page: str, after: int | None, seconds: float) -> int | None:
        """The newest flush id once one above ``after`` exists, or None after ``seconds``.

        None at once when ``after`` is None (a page that just loaded must not act on old
        requests) or above the latest id (the board is newer than the page: it restarted).
        The page counts as connected while it waits and for the presence window after.
        """
        self._seen[page] = self._clock()
        if after is None or after > self._latest:
            return None
        self._polling[page] += 1
        try:
            deadline = asyncio.get_running_loop().time() + seconds
            while self._latest <= after:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._announced.wait(), remaining)
                except TimeoutError:
                    return None
            return self._latest
        finally:
            self._polling[page] -= 1
            self._seen[page] = self._clock()

    def leave(self, page: str) -> None:
        """Forget a page whose wait was cut off (a closed tab must not hold up a flush).

        A page that was only cut off by the network comes back with its next wait.
        """
        if self._polling[page]:
            return
        self._seen.pop(page, None)
        del self._polling[page]
        for pending in self._pending.values():
            if page not in pending.reporters:
                pending.expected.discard(page)
                pending.settle()

    def report(self, page: str, flush: int, saved: list[str], failed: list[FailedSave]) -> bool:
        """Record what ``page`` saved for ``flush``; True when a flush was waiting for it.

        Raises UnknownFlush for an id that was never issued.
        """
        if not 1 <= flush <= self._latest:
            raise UnknownFlush(f"flush {flush} was never requested (latest is {self._latest})")
        self._seen[page] = self._clock()
        answered = [p for p in self._pending.values() if p.id <= flush]
        for pending in answered:
            pending.expected.add(page)
            pending.reporters.add(page)
            pending.saved.update(dict.fromkeys(saved))
            pending.failed.update(dict.fromkeys(failed))
            pending.settle()
        return bool(answered)

    async def flush(self, seconds: float) -> FlushOutcome:
        """Issue the next flush id, wake the waiting pages and wait for their reports.

        Returns at once when no page is connected, else when every connected page
        reported or ``seconds`` passed, whichever is first.
        """
        self._latest += 1
        pending = _PendingFlush(self._latest, self.connected())
        self._pending[pending.id] = pending
        announced, self._announced = self._announced, asyncio.Event()
        announced.set()
        pending.settle()
        try:
            await asyncio.wait_for(pending.complete.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            del self._pending[pending.id]
        return pending.outcome()
