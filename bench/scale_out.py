"""Scale-out: commands completed per second end to end, by deployment shape, and the
rate per second through the node-loss fault timeline.

    PYTHONPATH=. .venv/bin/python bench/scale_out.py [--seconds 20 --workers 48 --fault-rate 30]

Every shape runs on PostgreSQL with a real Hub, started one after the other in this
run:

- A (the baseline): 1 broker node, 1 gateway, 2 consumers;
- B: 3 broker nodes (a cluster, quorum queues on every node), 1 gateway, 2 consumers;
- C: 1 broker node, 2 gateways, 4 consumers;
- D: 3 broker nodes, 2 gateways, 4 consumers.

Load, closed loop: ``--workers`` clients, each sending a command, waiting until it is
final (long poll), and sending the next, for ``--seconds`` after a warm-up; a quarter
are ``save`` of an unchanged notebook (the consumer reads it from the user's running
server and stores nothing new), the rest ``ensure-user`` of existing users (one Hub
call). Commands go round the shape's gateways. Prints completed/s and latency per
shape with the ratio to A; then, on shape D, scenario 7 (kill -9 a broker node,
restart it, kill a consumer and a gateway) at ``--fault-rate`` with its rate chart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from devstack.reliability.harness import RunningStack, running_stack
from devstack.reliability.load import run_command
from devstack.reliability.node_loss import node_loss_under_load
from devstack.reliability.notebooks import NOTEBOOK_PATH, open_notebooks
from devstack.stack import StackOptions


@dataclass(frozen=True)
class Shape:
    """One deployment shape."""

    name: str
    broker_nodes: int
    gateways: int
    consumers: int

    def options(self) -> StackOptions:
        """The stack of this shape: PostgreSQL, no hub service (only commands save)."""
        return StackOptions(
            broker_nodes=self.broker_nodes,
            gateways=self.gateways,
            consumers=self.consumers,
            postgres=True,
            hub_service=False,
        )


SHAPES = (
    Shape("A 1 node, 1 gateway, 2 consumers", 1, 1, 2),
    Shape("B 3 nodes, 1 gateway, 2 consumers", 3, 1, 2),
    Shape("C 1 node, 2 gateways, 4 consumers", 1, 2, 4),
    Shape("D 3 nodes, 2 gateways, 4 consumers", 3, 2, 4),
)


@dataclass
class Throughput:
    """What one shape completed in the measured window."""

    shape: Shape
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    not_succeeded: int = 0

    @property
    def per_second(self) -> float:
        """Commands completed per second in the window."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        """Latency quantile ``q`` in ms (send → final)."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _worker(
    running: RunningStack,
    http: aiohttp.ClientSession,
    index: int,
    users: list[str],
    measure: tuple[float, float],
    out: Throughput,
) -> None:
    """Closed loop until the window ends; records commands sent inside the window."""
    gateways = running.stack.gateway_urls
    start, end = measure
    turn = 0
    while time.monotonic() < end:
        user = users[(index + turn) % len(users)]
        turn += 1
        command = (
            {"type": "save", "user": user, "path": NOTEBOOK_PATH}
            if index % 4 == 0
            else {"type": "ensure-user", "user": user}
        )
        sent = time.monotonic()
        view = await run_command(
            http, gateways[(index + turn) % len(gateways)], running.app_key, command, within=60
        )
        if sent >= start and time.monotonic() <= end:
            if view["status"] == "succeeded":
                out.latencies.append(time.monotonic() - sent)
            else:
                out.not_succeeded += 1


async def measure(running: RunningStack, shape: Shape, args: argparse.Namespace) -> Throughput:
    """Open a notebook for each user (servers spawn), then the closed-loop window."""
    users = [f"so{uuid.uuid4().hex[:4]}n{i}" for i in range(args.users)]
    not_open = await open_notebooks(running.stack, running.app_key, users)
    if not_open:
        raise RuntimeError(f"could not open the notebooks of {not_open}")
    out = Throughput(shape)
    start = time.monotonic() + args.warm_up
    end = start + args.seconds
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=args.workers * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        await asyncio.gather(
            *(_worker(running, http, i, users, (start, end), out) for i in range(args.workers))
        )
    out.seconds = args.seconds
    return out


def _table(results: list[Throughput]) -> str:
    base = results[0].per_second or 1e-9
    lines = [
        f"{'shape':<38} {'done/s':>8} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}",
    ]
    for r in results:
        lines.append(
            f"{r.shape.name:<38} {r.per_second:>8.1f} {r.per_second / base:>6.2f} "
            f"{r.quantile(0.5):>8.0f} {r.quantile(0.99):>8.0f} {r.not_succeeded:>6}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warm-up", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=48)
    parser.add_argument("--users", type=int, default=8, help="users with a running server")
    parser.add_argument("--fault-rate", type=float, default=30.0, help="scenario 7 cmd/s")
    parser.add_argument("--only", default="", help="shape letters to run, e.g. AD")
    parser.add_argument("--no-faults", action="store_true", help="skip the fault timeline")
    args = parser.parse_args()
    shapes = [s for s in SHAPES if not args.only or s.name[0] in args.only.upper()]
    results: list[Throughput] = []
    fault_report = ""
    for shape in shapes:
        state = Path(tempfile.mkdtemp(prefix="orch-scale-out-"))
        began = time.monotonic()
        with running_stack(state, shape.options()) as running:
            print(f"{shape.name}: up in {time.monotonic() - began:.0f} s", flush=True)
            result = asyncio.run(measure(running, shape, args))
            results.append(result)
            print(f"  {result.per_second:.1f} completed/s", flush=True)
            if shape is SHAPES[-1] and not args.no_faults:
                scenario = asyncio.run(
                    node_loss_under_load(running.stack, running.app_key, rate=args.fault_rate)
                )
                fault_report = scenario.render()
    print()
    print(f"closed loop, {args.workers} workers, {args.seconds:.0f} s window; ratio to the first")
    print(_table(results))
    if results:
        spread = statistics.pstdev(r.per_second for r in results)
        print(f"spread across shapes (stdev): {spread:.1f} completed/s")
    if fault_report:
        print()
        print(fault_report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
