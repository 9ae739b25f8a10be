"""What a refused command costs the gateway while the broker is down: this tree against
the last commit before the gateway refused without writing, same run.

Starts a private RabbitMQ (no Hub, no consumers), checks the ``--before`` revision out
into a temporary git worktree, and runs one gateway process from each tree, each with
its own fresh SQLite database. Stops the broker (graceful, as in the broker-restart
scenario) and waits until both gateways' ``/readyz`` report it down. Then, closed loop,
``--concurrency`` workers, ``--requests`` per phase, alternating ``--rounds`` times:

- the baseline, ``GET /healthz`` of this tree's gateway (its HTTP floor: no auth, no
  database);
- ``ensure-user`` without an Idempotency-Key to each gateway, every answer 503: the
  one before recorded each command and then marked it ``rejected``; this one answers
  before anything is written.

Prints each phase's rate, p50/p99, the gateway's CPU per request and the command rows
it wrote, then the medians and the ratios after/before and against the baseline.

    PYTHONPATH=. .venv/bin/python bench/outage_refusals.py [--requests 3000 --rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from sqlalchemy import func
from sqlmodel import select

from bench.gateway_throughput import Figures, Send, closed_loop, gateway_sender
from bench.outbox_cost import Gateway, gateways_before_and_after
from devstack.stack import LocalStack, StackOptions
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import CommandRecord

BEFORE_REFUSING_FIRST = "1df5aeb"  # the last commit before it


@dataclass
class Phase:
    """One measured phase: figures, gateway CPU per request, command rows written."""

    figures: Figures
    cpu_us: float
    rows: int


async def _command_rows(database: Path) -> int:
    engine = make_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with make_sessionmaker(engine)() as session:
            return int((await session.exec(select(func.count()).select_from(CommandRecord))).one())
    finally:
        await engine.dispose()


async def _broker_reported_down(http: aiohttp.ClientSession, url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        async with http.get(f"{url}/readyz") as response:
            if (await response.json())["checks"]["broker"] != "ok":
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} still reports the broker up")
        await asyncio.sleep(0.2)  # polling: nothing announces the change


def _healthz(http: aiohttp.ClientSession, url: str) -> Send:
    async def send(_: int) -> bool:
        async with http.get(f"{url}/healthz") as response:
            await response.read()
            return response.status == 200

    return send


async def _phase(
    name: str, send: Send, gateway: Gateway, database: Path, args: argparse.Namespace
) -> Phase:
    process = psutil.Process(gateway.process.pid)
    rows_before = await _command_rows(database)
    cpu_before = sum(process.cpu_times()[:2])
    figures = await closed_loop(name, send, args.requests, args.concurrency)
    cpu_us = (sum(process.cpu_times()[:2]) - cpu_before) / max(1, figures.ok) * 1e6
    return Phase(figures, cpu_us, await _command_rows(database) - rows_before)


async def measure(
    stack: LocalStack, before: Gateway, after: Gateway, state: Path, args: argparse.Namespace
) -> dict[str, list[Phase]]:
    """Stop the broker, then alternate the phases ``--rounds`` times."""
    phases: dict[str, list[Phase]] = {"baseline": [], "before": [], "after": []}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency)
    ) as http:
        await asyncio.to_thread(stack.broker.stop_broker_only)
        for gateway in (before, after):
            await _broker_reported_down(http, gateway.url, within=30)
        for _ in range(args.rounds):
            phases["baseline"].append(
                await _phase(
                    "baseline: GET /healthz",
                    _healthz(http, after.url),
                    after,
                    state / "after.db",
                    args,
                )
            )
            for gateway in (before, after):
                phases[gateway.name].append(
                    await _phase(
                        f"refused, {gateway.name}",
                        gateway_sender(
                            http, gateway.url, gateway.key, uuid.uuid4().hex[:6], expect=503
                        ),
                        gateway,
                        state / f"{gateway.name}.db",
                        args,
                    )
                )
    return phases


def _report(phases: dict[str, list[Phase]]) -> None:
    print()
    medians: dict[str, tuple[float, float, float]] = {}
    for name, runs in phases.items():
        for phase in runs:
            print(
                f"{phase.figures.line()}   gateway CPU {phase.cpu_us:5.0f} us/request"
                f"   rows written {phase.rows}"
            )
        medians[name] = (
            statistics.median(p.figures.rate for p in runs),
            statistics.median(p.figures.percentile(99) for p in runs),
            statistics.median(p.cpu_us for p in runs),
        )
        rate, p99, cpu = medians[name]
        print(f"{name}: median of {len(runs)}: {rate:.0f}/s, p99 {p99:.1f} ms, {cpu:.0f} us CPU")
    (base, _, _), (b_rate, b_p99, b_cpu), (a_rate, a_p99, a_cpu) = (
        medians["baseline"],
        medians["before"],
        medians["after"],
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    print(
        f"refusals after/before: rate x{a_rate / b_rate:.1f}, p99 {a_p99 / b_p99:.2f}, "
        f"CPU per request {a_cpu / b_cpu:.2f}"
    )
    print(f"refusal rate / baseline: before {b_rate / base:.2f}, after {a_rate / base:.2f}")


def main() -> int:
    """Start the broker and both gateways, measure, print, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE_REFUSING_FIRST)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    options = StackOptions(consumers=0, hub=False, hub_service=False)
    with (
        tempfile.TemporaryDirectory(prefix="outage-bench-") as temporary,
        gateways_before_and_after(Path(temporary), args.before, options) as gateways,
    ):
        stack, before, after = gateways
        phases = asyncio.run(measure(stack, before, after, Path(temporary), args))
    _report(phases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
