"""Long-poll wake-ups: a result event wakes exactly the requests watching that command."""

from __future__ import annotations

import asyncio
import uuid

from orchestrator.gateway.command_waiters import CommandWaiters, wait_for


async def test_notify_wakes_a_waiting_request() -> None:
    waiters = CommandWaiters()
    command_id = uuid.uuid4()
    with waiters.watch(command_id) as finished:
        waiting = asyncio.create_task(wait_for(finished, 30))
        await asyncio.sleep(0)  # let it start waiting
        waiters.notify(command_id)
        assert await asyncio.wait_for(waiting, 5) is True


async def test_a_result_between_reading_and_waiting_is_not_missed() -> None:
    waiters = CommandWaiters()
    command_id = uuid.uuid4()
    with waiters.watch(command_id) as finished:
        waiters.notify(command_id)  # arrives while the status is being read
        assert await wait_for(finished, 0.0) is True


async def test_other_commands_do_not_wake_and_timeout_is_false() -> None:
    waiters = CommandWaiters()
    mine, other = uuid.uuid4(), uuid.uuid4()
    with waiters.watch(mine) as finished:
        waiters.notify(other)
        assert await wait_for(finished, 0.01) is False


async def test_every_watcher_of_a_command_is_woken_and_nothing_leaks() -> None:
    waiters = CommandWaiters()
    command_id = uuid.uuid4()
    with waiters.watch(command_id) as first, waiters.watch(command_id) as second:
        assert len(waiters) == 1
        waiters.notify(command_id)
        assert first.is_set() and second.is_set()
    assert len(waiters) == 0
    waiters.notify(command_id)  # nobody watches: no error


async def test_wait_for_clears_the_event_for_the_next_round() -> None:
    waiters = CommandWaiters()
    command_id = uuid.uuid4()
    with waiters.watch(command_id) as finished:
        waiters.notify(command_id)
        assert await wait_for(finished, 0) is True
        assert await wait_for(finished, 0.01) is False
