"""Scenario 1: broker restart under steady load.

A steady stream of ``ensure-user`` commands; the broker is stopped (gracefully, data
kept) and started again on the same ports mid-way. While it is down the gateway must
answer 503 and never 202; every command that got a 202 must succeed. Prints the
recovery time (first 202 after the broker is back).

    .venv/bin/python bench/reliability/broker_restart.py [--quick] [--rate 500]
"""

from __future__ import annotations

import argparse

from devstack.reliability.harness import (
    RunningStack,
    run_scenario_script,
    scenario_parser,
)
from devstack.reliability.result import ScenarioResult
from devstack.reliability.steady_load import broker_restart_under_load


async def _scenario(running: RunningStack, args: argparse.Namespace) -> ScenarioResult:
    quick = args.quick
    return await broker_restart_under_load(
        running.stack,
        running.app_key,
        rate=args.rate or (100 if quick else 500),
        stop_after=5 if quick else 15,
        down_for=3 if quick else 5,
        load_after_up=10 if quick else 20,
        drain_timeout=900,
    )


if __name__ == "__main__":
    parser = scenario_parser(__doc__)
    parser.add_argument("--rate", type=float, help="commands per second (default 500)")
    raise SystemExit(run_scenario_script(parser, _scenario))
