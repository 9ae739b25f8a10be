"""Scenario 3, quick: the consumers reach the Hub through a fault proxy injecting 20%
5xx, 429 with Retry-After, dropped connections and latency; every command succeeds.
The stack (and its proxy) is this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.reliability.harness import RunningStack, running_stack
from devstack.reliability.hub_faults import hub_faults


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state = tmp_path_factory.mktemp("reliability-hub-faults")
    with running_stack(state, fault_proxy=True) as started:
        yield started


@pytest.mark.slow
async def test_commands_succeed_through_hub_faults_and_are_retried(
    running: RunningStack,
) -> None:
    assert running.proxy is not None
    result = await hub_faults(
        running.stack,
        running.app_key,
        running.proxy,
        users=2,
        saves=2,
        ensure_users=10,
        baseline=False,
    )
    print(result.render())
    assert result.problems == [], result.render()
    assert result.figures["in-process retries (tenacity)"] > 0
