"""The flush board: ids, waiting pages, reports and timeouts, without a server."""

from __future__ import annotations

import asyncio

import pytest

from hub_service.flush_board import FailedSave, FlushBoard, UnknownFlush

PAGE = "page-aaaa"
OTHER = "page-bbbb"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def started(task: asyncio.Task[int | None]) -> asyncio.Task[int | None]:
    """The task once it is waiting on the board."""
    await asyncio.sleep(0)
    assert not task.done()
    return task


async def test_a_flush_with_no_connected_page_returns_at_once_with_no_pages() -> None:
    board = FlushBoard()
    outcome = await asyncio.wait_for(board.flush(30), 1)
    assert (outcome.flush, outcome.pages, outcome.reported) == (1, 0, 0)
    assert outcome.saved == () and outcome.failed == ()


async def test_a_flush_wakes_a_waiting_page_and_returns_when_it_reported() -> None:
    board = FlushBoard()
    waiting = await started(asyncio.create_task(board.wait(PAGE, board.latest, 20)))
    flushing = asyncio.create_task(board.flush(30))
    flush_id = await asyncio.wait_for(waiting, 1)
    assert flush_id == 1
    assert not flushing.done()  # still waiting for the page's report

    failed = [FailedSave("b.ipynb", "disk full")]
    assert board.report(PAGE, flush_id, ["a.ipynb"], failed) is True
    outcome = await asyncio.wait_for(flushing, 1)
    assert outcome.as_json() == {
        "flush": 1,
        "pages": 1,
        "reported": 1,
        "saved": ["a.ipynb"],
        "failed": [{"path": "b.ipynb", "reason": "disk full"}],
    }


async def test_a_flush_times_out_when_a_connected_page_never_reports() -> None:
    board = FlushBoard()
    waiting = await started(asyncio.create_task(board.wait(PAGE, 0, 20)))
    second = await started(asyncio.create_task(board.wait(OTHER, 0, 20)))
    flushing = asyncio.create_task(board.flush(0.05))
    assert await waiting == 1 and await second == 1
    board.report(OTHER, 1, ["x.ipynb"], [])
    outcome = await asyncio.wait_for(flushing, 1)
    assert (outcome.pages, outcome.reported, outcome.saved) == (2, 1, ("x.ipynb",))
    assert board.report(PAGE, 1, [], []) is False  # too late: nobody waits any more


async def test_a_page_seen_recently_counts_as_connected_until_the_window_ends() -> None:
    clock = Clock()
    board = FlushBoard(presence_seconds=30, clock=clock)
    assert await board.wait(PAGE, 0, 0) is None  # an empty poll: seen, not waiting
    clock.now += 29
    assert board.connected() == {PAGE}
    outcome = await board.flush(0.01)
    assert (outcome.pages, outcome.reported) == (1, 0)

    clock.now += 2  # 31 s after it was last seen
    assert board.connected() == set()
    assert (await board.flush(5)).pages == 0


async def test_a_page_that_connects_later_does_not_get_old_ids() -> None:
    board = FlushBoard()
    await board.flush(0)
    await board.flush(0)
    assert board.latest == 2
    # A new page first asks without ``after`` (answered at once, the handler adds the
    # current id), then waits for a newer id: the old flushes never wake it.
    assert await asyncio.wait_for(board.wait(PAGE, None, 20), 0.5) is None
    assert await board.wait(PAGE, board.latest, 0.02) is None
    waiting = await started(asyncio.create_task(board.wait(PAGE, board.latest, 20)))
    flushing = asyncio.create_task(board.flush(1))
    assert await asyncio.wait_for(waiting, 1) == 3
    board.report(PAGE, 3, [], [])
    assert (await flushing).reported == 1


async def test_ids_increase_and_a_report_of_an_unissued_id_is_refused() -> None:
    board = FlushBoard()
    ids = [(await board.flush(0)).flush for _ in range(3)]
    assert ids == [1, 2, 3]
    assert board.latest == 3
    for bad in (0, 4):
        with pytest.raises(UnknownFlush):
            board.report(PAGE, bad, [], [])


async def test_a_report_of_a_newer_flush_answers_the_older_pending_ones() -> None:
    board = FlushBoard()
    waiting = await started(asyncio.create_task(board.wait(PAGE, 0, 20)))
    older = asyncio.create_task(board.flush(1))
    await asyncio.sleep(0)
    newer = asyncio.create_task(board.flush(1))
    await asyncio.sleep(0)
    assert await waiting in (1, 2)  # whichever flush it saw first
    board.report(PAGE, 2, ["a.ipynb"], [])
    first, second = await asyncio.wait_for(asyncio.gather(older, newer), 0.5)
    assert (first.flush, first.reported, first.saved) == (1, 1, ("a.ipynb",))
    assert (second.flush, second.reported) == (2, 1)


async def test_a_page_cut_off_mid_poll_no_longer_holds_up_a_flush() -> None:
    board = FlushBoard()
    waiting = await started(asyncio.create_task(board.wait(PAGE, 0, 20)))
    waiting.cancel()  # what the handler does when the connection closes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    board.leave(PAGE)
    outcome = await asyncio.wait_for(board.flush(30), 1)
    assert outcome.pages == 0


async def test_a_page_leaving_during_a_flush_settles_it() -> None:
    board = FlushBoard()
    await board.wait(PAGE, 0, 0)  # seen recently, not polling
    flushing = asyncio.create_task(board.flush(30))
    await asyncio.sleep(0)
    board.leave(PAGE)
    outcome = await asyncio.wait_for(flushing, 1)
    assert (outcome.pages, outcome.reported) == (0, 0)


async def test_a_page_that_reports_without_being_counted_is_counted_from_then_on() -> None:
    board = FlushBoard()
    waiting = await started(asyncio.create_task(board.wait(PAGE, 0, 20)))
    flushing = asyncio.create_task(board.flush(1))
    assert await waiting == 1
    assert board.report(OTHER, 1, ["other.ipynb"], []) is True  # unseen so far
    await asyncio.sleep(0.01)
    assert not flushing.done()  # PAGE has not reported yet
    board.report(PAGE, 1, ["mine.ipynb", "other.ipynb"], [])
    outcome = await asyncio.wait_for(flushing, 1)
    assert (outcome.pages, outcome.reported) == (2, 2)
    assert outcome.saved == ("other.ipynb", "mine.ipynb")


async def test_a_page_ahead_of_the_board_is_answered_at_once_and_counted() -> None:
    board = FlushBoard()  # e.g. the server restarted under an open page that saw id 7
    assert await asyncio.wait_for(board.wait(PAGE, 7, 20), 0.5) is None
    assert board.connected() == {PAGE}
