"""The save extension's outbox rules: coalescing, barriers, the bound, and backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hub_service.notify_queue import Backoff, CoalescingQueue, PendingChange
from schemas.notifications import ContentsAction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def save(path: str, seconds: float = 0) -> PendingChange:
    return PendingChange(ContentsAction.SAVE, path, occurred_at=T0 + timedelta(seconds=seconds))


def drain(queue: CoalescingQueue) -> list[PendingChange]:
    out = []
    while (change := queue.take()) is not None:
        out.append(change)
    return out


def test_a_burst_of_saves_of_one_file_becomes_one_change_keeping_the_earliest_time() -> None:
    queue = CoalescingQueue()
    burst = [save("a.ipynb", s) for s in (0, 1, 2, 3)]
    for change in burst:
        assert queue.put(change)
    assert len(queue) == 1
    (merged,) = drain(queue)
    assert merged.coalesced == 4
    assert merged.occurred_at == T0
    assert merged.id == burst[-1].id  # latest wins


def test_saves_of_different_files_keep_their_order() -> None:
    queue = CoalescingQueue()
    for path in ("a.ipynb", "b.ipynb", "a.ipynb", "c.ipynb"):
        queue.put(save(path))
    assert [c.path for c in drain(queue)] == ["a.ipynb", "b.ipynb", "c.ipynb"]


def test_no_save_merges_across_a_rename_or_delete() -> None:
    queue = CoalescingQueue()
    queue.put(save("a.ipynb", 0))
    queue.put(PendingChange(ContentsAction.RENAME, "b.ipynb", source_path="a.ipynb"))
    queue.put(save("a.ipynb", 5))
    queue.put(PendingChange(ContentsAction.DELETE, "a.ipynb"))
    queue.put(save("a.ipynb", 9))
    actions = [(c.action.value, c.path, c.coalesced) for c in drain(queue)]
    assert actions == [
        ("save", "a.ipynb", 1),
        ("rename", "b.ipynb", 1),
        ("save", "a.ipynb", 1),
        ("delete", "a.ipynb", 1),
        ("save", "a.ipynb", 1),
    ]


def test_a_change_taken_for_sending_absorbs_nothing_and_goes_back_to_the_front() -> None:
    queue = CoalescingQueue()
    queue.put(save("a.ipynb", 0))
    queue.put(save("b.ipynb", 1))
    in_flight = queue.take()
    assert in_flight is not None
    queue.put(save("a.ipynb", 2))  # must not merge into the change being sent
    queue.put_back(in_flight)  # delivery failed
    assert [(c.path, c.occurred_at) for c in drain(queue)] == [
        ("a.ipynb", T0),
        ("b.ipynb", T0 + timedelta(seconds=1)),
        ("a.ipynb", T0 + timedelta(seconds=2)),
    ]


def test_the_bound_drops_new_changes_and_counts_them_but_merges_still_work() -> None:
    queue = CoalescingQueue(maxsize=2)
    assert queue.put(save("a.ipynb"))
    assert queue.put(save("b.ipynb"))
    assert not queue.put(save("c.ipynb"))
    assert queue.put(save("a.ipynb", 3))  # folded in: no room needed
    assert queue.dropped == 1
    assert [c.path for c in drain(queue)] == ["a.ipynb", "b.ipynb"]


def test_backoff_grows_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.1, factor=2, maximum=1.0, jitter=0.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_backoff_jitter_stays_within_its_spread() -> None:
    backoff = Backoff(initial=1.0, factor=1, maximum=1.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len(set(delays)) > 100
