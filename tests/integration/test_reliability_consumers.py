"""Scenario 2, quick: consumers are SIGKILLed under load and started again.

Every accepted command succeeds, every save (of changed content) makes exactly one
version, no user is reported created twice. The stack is this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.reliability.harness import RunningStack, running_stack
from devstack.reliability.process_faults import consumer_kills_under_load


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("reliability-consumers")) as started:
        yield started


@pytest.mark.slow
async def test_consumer_sigkill_under_load_loses_and_duplicates_nothing(
    running: RunningStack,
) -> None:
    result = await consumer_kills_under_load(
        running.stack, running.app_key, rate=15, kills=2, kill_every=3, save_users=2
    )
    print(result.render())
    assert result.problems == [], result.render()
    assert result.figures["saves sent"] > 0
    assert result.figures["versions made by saves"] == result.figures["saves sent"]
