"""Scenario 2: consumers SIGKILLed repeatedly under load.

Steady ``ensure-user`` load plus save loops (the notebook changes before every
``save``); every ``--kill-every`` seconds one consumer is SIGKILLed and started again.
Every accepted command must succeed, every save must make exactly one version.

    .venv/bin/python bench/reliability/consumer_kills.py [--quick] [--kills 10]
"""

from __future__ import annotations

import argparse

from devstack.reliability.harness import (
    RunningStack,
    run_scenario_script,
    scenario_parser,
)
from devstack.reliability.process_faults import consumer_kills_under_load
from devstack.reliability.result import ScenarioResult


async def _scenario(running: RunningStack, args: argparse.Namespace) -> ScenarioResult:
    quick = args.quick
    return await consumer_kills_under_load(
        running.stack,
        running.app_key,
        rate=args.rate or (20 if quick else 50),
        kills=args.kills or (3 if quick else 10),
        kill_every=4 if quick else 6,
        save_users=2 if quick else 4,
    )


if __name__ == "__main__":
    parser = scenario_parser(__doc__)
    parser.add_argument("--rate", type=float, help="ensure-user commands per second (50)")
    parser.add_argument("--kills", type=int, help="how many SIGKILLs (default 10)")
    raise SystemExit(run_scenario_script(parser, _scenario))
