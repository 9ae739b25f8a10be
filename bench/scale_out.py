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
final (long poll), and sending the next, for ``--seconds`` after a warm-up; each has
a user of its own (a user's commands run one at a time). ``--users`` of them send
``save`` of an unchanged notebook (the consumer reads it from the user's running server
and stores nothing new), the rest ``ensure-user`` (after the first, one Hub call).
Commands go round the shape's gateways. Prints completed/s and latency per
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
import psutil

from devstack.reliability.harness import RunningStack, running_stack
from devstack.reliability.load import RELIABILITY_APP, run_command
from devstack.reliability.node_loss import node_loss_under_load
from devstack.reliability.notebooks import NOTEBOOK_PATH, open_notebooks
from devstack.reliability.probes import cpu_by_group, process_groups
from devstack.stack import StackOptions
from schemas.workspaces import workspace_name


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
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds in the window

    def cpu_ms_per_command(self) -> dict[str, float]:
        """CPU milliseconds per completed command, by process role (summed over
        processes of a role: gateway-1 counts as gateway)."""
        done = max(len(self.latencies), 1)
        roles: dict[str, float] = {}
        for name, seconds in self.cpu.items():
            role = name.split("-")[0]
            roles[role] = roles.get(role, 0.0) + seconds * 1000 / done
        return dict(sorted(roles.items(), key=lambda item: -item[1]))

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
    command: dict[str, str],
    measure: tuple[float, float],
    out: Throughput,
) -> None:
    """Closed loop of ``command`` until the window ends; records those sent inside it."""
    gateways = running.stack.gateway_urls
    start, end = measure
    turn = 0
    while time.monotonic() < end:
        turn += 1
        sent = time.monotonic()
        view = await run_command(
            http, gateways[(index + turn) % len(gateways)], running.app_key, command, within=60
        )
        if sent >= start and time.monotonic() <= end:
            if view["status"] == "succeeded":
                out.latencies.append(time.monotonic() - sent)
            else:
                out.not_succeeded += 1


async def measure(
    running: RunningStack, shape: Shape, args: argparse.Namespace
) -> tuple[Throughput, Throughput | None]:
    """Open a notebook for each user (servers spawn), then the closed-loop window; on
    the first shape also the baseline, the same calls made to the Hub directly."""
    users = [f"so{uuid.uuid4().hex[:4]}n{i}" for i in range(args.users)]
    not_open = await open_notebooks(running.stack, running.app_key, users)
    if not_open:
        raise RuntimeError(f"could not open the notebooks of {not_open}")
    direct = await _direct(running, users, args) if shape is SHAPES[0] else None
    return await _through_orchestrator(running, shape, users, args), direct


def _window(args: argparse.Namespace) -> tuple[float, float]:
    start = time.monotonic() + args.warm_up
    return start, start + args.seconds


async def _cpu_in_window(
    running: RunningStack, window: tuple[float, float], out: Throughput
) -> None:
    """CPU seconds each process role (and this load generator) used in the window."""
    groups = process_groups(running.stack)
    me = psutil.Process()

    def sample() -> dict[str, float]:
        times = me.cpu_times()
        return {**cpu_by_group(groups), "load generator": times.user + times.system}

    await asyncio.sleep(max(0.0, window[0] - time.monotonic()))  # the window's start
    before = await asyncio.to_thread(sample)
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()))  # and its end
    after = await asyncio.to_thread(sample)
    out.cpu = {name: after[name] - before.get(name, 0.0) for name in after}


async def _direct(running: RunningStack, users: list[str], args: argparse.Namespace) -> Throughput:
    """The baseline: what the consumers call for each command, made straight to the
    Hub with the orchestrator's token (``POST /users/NAME``, answered 409; a contents
    GET of the notebook through the proxy), by as many closed-loop workers."""
    stack = running.stack
    headers = {"Authorization": f"token {stack.service_token}"}
    out = Throughput(Shape("baseline: the same Hub calls, direct", 0, 0, 0))
    calls = [
        f"{stack.hub.url}/user/{workspace_name(RELIABILITY_APP, u)}/api/contents/{NOTEBOOK_PATH}"
        for u in users
    ]
    tag = uuid.uuid4().hex[:4]
    posts = [f"{stack.hub.api_url}/users/sd{tag}w{i}" for i in range(args.workers - len(calls))]
    start, end = _window(args)

    async def worker(http: aiohttp.ClientSession, method: str, url: str) -> None:
        while time.monotonic() < end:
            sent = time.monotonic()
            async with http.request(method, url, headers=headers) as response:
                await response.read()
                ok = response.status in (200, 201, 409)
            if sent >= start and time.monotonic() <= end:
                if ok:
                    out.latencies.append(time.monotonic() - sent)
                else:
                    out.not_succeeded += 1

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(
            _cpu_in_window(running, (start, end), out),
            *(worker(http, "GET", url) for url in calls),
            *(worker(http, "POST", url) for url in posts),
        )
    out.seconds = args.seconds
    return out


async def _through_orchestrator(
    running: RunningStack, shape: Shape, users: list[str], args: argparse.Namespace
) -> Throughput:
    """Commands to the gateways, each waited for until final (see the module docstring)."""
    out = Throughput(shape)
    start, end = _window(args)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=args.workers * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        # One user per worker: a user's commands run one at a time (their order), so
        # workers sharing users would measure that queue instead of the pipeline.
        saves = [{"type": "save", "user": u, "path": NOTEBOOK_PATH} for u in users]
        tag = uuid.uuid4().hex[:4]
        ensures = [
            {"type": "ensure-user", "user": f"se{tag}w{i}"}
            for i in range(args.workers - len(saves))
        ]
        await asyncio.gather(
            _cpu_in_window(running, (start, end), out),
            *(
                _worker(running, http, i, command, (start, end), out)
                for i, command in enumerate([*saves, *ensures])
            ),
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
    lines.append("")
    lines.append("CPU ms per completed command, by process role (2 cores = 2000 ms per s):")
    for r in results:
        busy = sum(r.cpu.values()) / max(r.seconds, 1e-9)
        roles = ", ".join(f"{k} {v:.1f}" for k, v in r.cpu_ms_per_command().items())
        lines.append(f"  {r.shape.name.split()[0]} {roles}  (all: {busy:.2f} cores busy)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warm-up", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=48)
    parser.add_argument("--users", type=int, default=12, help="save workers (a server each)")
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
            result, direct = asyncio.run(measure(running, shape, args))
            if direct is not None:
                results.insert(0, direct)
                print(f"  baseline, Hub direct: {direct.per_second:.1f} calls/s", flush=True)
            results.append(result)
            print(f"  {result.per_second:.1f} completed/s", flush=True)
            if shape is SHAPES[-1] and not args.no_faults:
                scenario = asyncio.run(
                    node_loss_under_load(running.stack, running.app_key, rate=args.fault_rate)
                )
                fault_report = scenario.render()
    print()
    print(
        f"closed loop, {args.workers} workers, {args.seconds:.0f} s window; "
        "ratio to the first row (the Hub called directly)"
    )
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
