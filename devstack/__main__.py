"""``python -m devstack`` (what ``make run`` runs): the whole stack on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from devstack.dev import run_dev


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the stack in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--state-dir", default=".state/dev")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument(
        "--broker-nodes", type=int, default=1, help="3: a RabbitMQ cluster of three nodes"
    )
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes")
    parser.add_argument(
        "--postgres", action="store_true", help="a private PostgreSQL instead of SQLite"
    )
    parser.add_argument("--hubs", type=int, default=1, help="JupyterHubs (users spread)")
    parser.add_argument(
        "--cross-site",
        action="store_true",
        help="the demo app on another site (https://localhost) than the Hub (HTTPS, "
        "partitioned cookies)",
    )
    args = parser.parse_args(argv)
    return run_dev(
        args.state_dir,
        consumers=args.consumers,
        broker_nodes=args.broker_nodes,
        gateways=args.gateways,
        postgres=args.postgres,
        hubs=args.hubs,
        cross_site=args.cross_site,
    )


if __name__ == "__main__":
    sys.exit(main())
