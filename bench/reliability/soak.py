"""Scenario 6: soak at a steady rate.

``ensure-user`` commands at a steady rate (default 100/s: on the 2-core reference machine
the whole stack sustains ~183 commands/s for 10 minutes, so 200/s measures saturation,
see docs/RELIABILITY.md) for 10 minutes (``--seconds``), sampling the
RSS of every process (gateway, each consumer, Hub with its proxy, broker) and the
command queue depths. Memory must stay flat (< 10% growth after warm-up), the queues
must not grow, every accepted command must succeed.

    .venv/bin/python bench/reliability/soak.py [--quick] [--rate 100] [--seconds 600]
"""

from __future__ import annotations

import argparse

from devstack.reliability.harness import (
    RunningStack,
    run_scenario_script,
    scenario_parser,
)
from devstack.reliability.result import ScenarioResult
from devstack.reliability.steady_load import soak


async def _scenario(running: RunningStack, args: argparse.Namespace) -> ScenarioResult:
    quick = args.quick
    seconds = args.seconds or (60 if quick else 600)
    return await soak(
        running.stack,
        running.app_key,
        rate=args.rate or (50 if quick else 100),
        seconds=seconds,
        sample_every=max(2.0, seconds / 60),
    )


if __name__ == "__main__":
    parser = scenario_parser(__doc__)
    parser.add_argument("--rate", type=float, help="commands per second (default 100)")
    parser.add_argument("--seconds", type=float, help="duration (default 600)")
    raise SystemExit(run_scenario_script(parser, _scenario))
