"""The save extension's outbox, as pure logic: a bounded, coalescing FIFO and a backoff.

Nothing here does I/O or touches the event loop, so the rules can be tested directly:
bursts of saves of one file collapse into one pending change (latest wins, the earliest
save time is kept for latency figures); a rename or delete is a barrier that later
saves never merge across, so per-file order is kept; when the bound is reached new
changes are dropped and counted (a save must never wait for the outbox).
"""

from __future__ import annotations

import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

from schemas.commands import utcnow
from schemas.notifications import ContentsAction


@dataclass(frozen=True)
class PendingChange:
    """One change waiting to be forwarded to the hub service."""

    action: ContentsAction
    path: str
    source_path: str | None = None
    occurred_at: datetime = field(default_factory=utcnow)
    coalesced: int = 1
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def absorb(self, later: PendingChange) -> PendingChange:
        """This save merged with a later save of the same file (a fresh id: new content)."""
        return replace(
            later,
            occurred_at=min(self.occurred_at, later.occurred_at),
            coalesced=self.coalesced + later.coalesced,
        )


class CoalescingQueue:
    """Bounded FIFO of pending changes that folds repeated saves of one file together.

    Only a save that has not been taken for sending, and that no rename or delete
    followed, absorbs a later save of the same path; it keeps its place in the queue.
    """

    def __init__(self, maxsize: int = 1000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: OrderedDict[int, PendingChange] = OrderedDict()
        self._open_saves: dict[str, int] = {}
        self._next_seq = 0
        self._front_seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, change: PendingChange) -> bool:
        """Queue ``change`` (or fold it into a pending save); False if dropped for the bound."""
        if change.action == ContentsAction.SAVE:
            seq = self._open_saves.get(change.path)
            if seq is not None:
                self._items[seq] = self._items[seq].absorb(change)
                return True
        else:
            self._open_saves.clear()  # a barrier: nothing merges across a rename/delete
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            return False
        seq = self._next_seq
        self._next_seq += 1
        self._items[seq] = change
        if change.action == ContentsAction.SAVE:
            self._open_saves[change.path] = seq
        return True

    def take(self) -> PendingChange | None:
        """Remove and return the oldest change (it no longer absorbs saves); None if empty."""
        if not self._items:
            return None
        seq, change = self._items.popitem(last=False)
        if self._open_saves.get(change.path) == seq:
            del self._open_saves[change.path]
        return change

    def put_back(self, change: PendingChange) -> None:
        """Return a change whose delivery failed to the front (it may exceed the bound)."""
        self._front_seq -= 1  # below every sequence number handed out so far
        seq = self._front_seq
        self._items[seq] = change
        self._items.move_to_end(seq, last=False)


class Backoff:
    """Exponential backoff with jitter, capped; ``reset`` after a success."""

    def __init__(
        self,
        *,
        initial: float = 0.1,
        factor: float = 2.0,
        maximum: float = 5.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last reset."""
        return self._failures

    def next_delay(self) -> float:
        """Seconds to wait after one more failure: grows by ``factor`` up to ``maximum``."""
        base = min(self.maximum, self.initial * self.factor**self._failures)
        self._failures += 1
        spread = base * self.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))

    def reset(self) -> None:
        """Start again from ``initial`` (call after a delivery succeeded)."""
        self._failures = 0
