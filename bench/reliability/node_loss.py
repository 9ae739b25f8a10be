"""Scenario 7: a broker node, a consumer and a gateway lost under mixed load, on the
distributed shape (3 RabbitMQ nodes, PostgreSQL, 2 gateways, 4 consumers).

``ensure-user`` and ``open`` commands at ``--rate`` spread over both gateways, plus
save loops (changed content before every ``save``); ``kill -9`` of broker node 1, its
restart, then a consumer and a gateway killed. Prints lost / retried / 503 / other
5xx, versions and ``notebook.saved`` events per version, the time until the accepted
rate is back to 90 %, and the rate per second as a text chart.

    .venv/bin/python bench/reliability/node_loss.py [--quick] [--rate 40]
"""

from __future__ import annotations

import argparse

from devstack.reliability.harness import (
    RunningStack,
    run_scenario_script,
    scenario_parser,
)
from devstack.reliability.node_loss import cluster_options, node_loss_under_load
from devstack.reliability.result import ScenarioResult


async def _scenario(running: RunningStack, args: argparse.Namespace) -> ScenarioResult:
    quick = args.quick
    return await node_loss_under_load(
        running.stack,
        running.app_key,
        rate=args.rate or (20 if quick else 40),
        warm_up=10 if quick else 20,
        node_down=10 if quick else 20,
        settle=8 if quick else 15,
        save_users=3 if quick else 6,
    )


if __name__ == "__main__":
    parser = scenario_parser(__doc__)
    parser.add_argument("--rate", type=float, help="ensure-user/open commands per second (40)")
    raise SystemExit(run_scenario_script(parser, _scenario, options=cluster_options()))
