"""Scenario 5, quick: bad input at both doors.

A few hundred schemathesis requests from the gateway's own /openapi.json and the
hand-made hostile requests get no 5xx; poison messages published straight onto the
command partitions end in the dead-letter queue with a reason; nothing crashes.
The stack is this module's own (its dead-letter queue is drained here).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.reliability.bad_input import bad_input
from devstack.reliability.harness import RunningStack, running_stack


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("reliability-bad-input")) as started:
        yield started


async def test_bad_input_gets_no_5xx_and_poison_is_dead_lettered(running: RunningStack) -> None:
    result = await bad_input(running.stack, running.app_key, generated_requests=300)
    print(result.render())
    assert result.problems == [], result.render()
    assert (
        result.figures["poison messages dead-lettered"]
        == (result.figures["poison messages published"])
    )
