"""Scenario 4: Hub restart in the middle of spawns.

A batch of start-server / open commands for fresh users runs once undisturbed
(baseline), then again for other fresh users while the Hub is restarted as soon as
a spawn is pending. Every command of the disturbed batch must still succeed.

    .venv/bin/python bench/reliability/hub_restart.py [--quick] [--users 6]
"""

from __future__ import annotations

import argparse

from devstack.reliability.harness import (
    RunningStack,
    run_scenario_script,
    scenario_parser,
)
from devstack.reliability.process_faults import hub_restart_mid_spawn
from devstack.reliability.result import ScenarioResult


async def _scenario(running: RunningStack, args: argparse.Namespace) -> ScenarioResult:
    return await hub_restart_mid_spawn(
        running.stack, running.app_key, users=args.users or (2 if args.quick else 6)
    )


if __name__ == "__main__":
    parser = scenario_parser(__doc__)
    parser.add_argument("--users", type=int, help="commands per batch (default 6)")
    raise SystemExit(run_scenario_script(parser, _scenario))
