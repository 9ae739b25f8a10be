"""Scenario 1, quick: the broker restarts under steady load.

While the broker is down the gateway answers 503 and never 202; every command that
got a 202 succeeds once the broker is back. The stack is this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.reliability.harness import RunningStack, running_stack
from devstack.reliability.steady_load import broker_restart_under_load


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("reliability-broker")) as started:
        yield started


@pytest.mark.slow
async def test_broker_restart_under_load_loses_no_accepted_command(running: RunningStack) -> None:
    result = await broker_restart_under_load(
        running.stack,
        running.app_key,
        rate=40,
        stop_after=3,
        down_for=2,
        load_after_up=5,
        drain_timeout=90,
    )
    print(result.render())
    assert result.problems == [], result.render()
    assert result.figures["202 before the broker was back"] == 0
    assert result.figures["requests sent while down"] > 0
    assert result.figures["final states"] == {"succeeded": result.figures["accepted commands"]}
