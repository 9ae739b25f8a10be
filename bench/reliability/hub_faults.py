"""Scenario 3: Hub faults through a fault proxy.

The consumers reach the real Hub through a proxy that answers 20% of requests with
502/503, some with 429 + Retry-After, drops some connections and delays others.
User journeys (open, change + save, stop-server) and ensure-user commands run first
without faults (baseline), then with them: every command must still succeed.
Prints the retries (consumers' /metrics) and the faults injected (proxy).

    .venv/bin/python bench/reliability/hub_faults.py [--quick] [--users 6]
"""

from __future__ import annotations

import argparse

from devstack.reliability.harness import (
    RunningStack,
    run_scenario_script,
    scenario_parser,
)
from devstack.reliability.hub_faults import hub_faults
from devstack.reliability.result import ScenarioResult


async def _scenario(running: RunningStack, args: argparse.Namespace) -> ScenarioResult:
    quick = args.quick
    assert running.proxy is not None, "started with fault_proxy=True"
    return await hub_faults(
        running.stack,
        running.app_key,
        running.proxy,
        users=args.users or (2 if quick else 6),
        saves=3 if quick else 5,
        ensure_users=20 if quick else 100,
    )


if __name__ == "__main__":
    parser = scenario_parser(__doc__)
    parser.add_argument("--users", type=int, help="users with a notebook journey (6)")
    raise SystemExit(run_scenario_script(parser, _scenario, fault_proxy=True))
