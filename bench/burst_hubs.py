"""``bench/burst.py --hubs N``: one burst of users opening a notebook, spread over N Hubs
or all on one, in the same run.

One stack with N real Hubs, each with ``concurrent_spawn_limit`` = --spawn-limit and the
orchestrator's spawn limit per Hub the same. Each round sends --users ``open`` commands
at once twice, on fresh users, every server stopped between bursts:

* over N Hubs: new users are placed over all of them (equal weights);
* on 1 Hub (the baseline): every Hub but the first is drained first, so the same
  orchestrator places every new user on the first Hub.

Rounds run in ABBA order (the machine's load drifts). While a burst runs, every Hub's
API is asked 10 times a second which servers are pending a spawn: the peak number of
spawns in flight per Hub and in all, as the Hubs themselves report them. Prints the
makespans and their ratio, the peaks (and how many samples the busy Hubs answered), the
errors apps saw, the 429s the Hubs answered the orchestrator (from the consumers'
metrics), the machine's CPU use over each burst, and the users placed per Hub.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from sqlmodel import col, select

from bench.burst import TIMEOUT, Burst, _burst, _orchestrated_app, _users
from consumers.hub_client import HubClient
from devstack.command_client import CommandClient
from devstack.stack import LocalStack, StackOptions
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import WorkspaceRecord
from schemas.workspaces import workspace_name

APP = "burst"
SAMPLE_SECONDS = 0.1


@dataclass
class SpawnPeaks:
    """The most spawns each Hub, and all together, had in flight at one sample."""

    per_hub: list[int]
    total: int = 0
    samples: int = 0
    failed_samples: int = 0


@dataclass
class HubBurst:
    """One burst and what the Hubs did meanwhile."""

    burst: Burst
    peaks: SpawnPeaks
    hub_429s: float = 0.0
    placed: Counter[str] = field(default_factory=Counter)
    cpu_busy: float = 0.0  # the machine's CPU use over the burst, percent of all cores


async def _pending(http: aiohttp.ClientSession, stack: LocalStack, index: int) -> int:
    """Servers of Hub ``index`` with a spawn pending, as its API reports them."""
    headers = {"Authorization": f"token {stack.hub_admin_token}"}
    url = f"{stack.hubs[index].api_url}/users"
    async with http.get(url, params={"state": "active"}, headers=headers) as response:
        users = await response.json()
    return sum(
        1
        for user in users
        for server in (user.get("servers") or {}).values()
        if server.get("pending") == "spawn"
    )


async def _watch(http: aiohttp.ClientSession, stack: LocalStack, peaks: SpawnPeaks) -> None:
    """Sample every Hub's pending spawns until cancelled."""
    while True:
        try:
            counts = await asyncio.gather(
                *(_pending(http, stack, i) for i in range(len(stack.hubs)))
            )
        except (aiohttp.ClientError, TimeoutError, ValueError):
            peaks.failed_samples += 1  # a busy Hub that did not answer: the next sample
        else:
            peaks.per_hub = [max(a, b) for a, b in zip(peaks.per_hub, counts, strict=True)]
            peaks.total = max(peaks.total, sum(counts))
            peaks.samples += 1
        await asyncio.sleep(SAMPLE_SECONDS)


async def _hub_429s(http: aiohttp.ClientSession, stack: LocalStack) -> float:
    """429 answers from any Hub to the consumers so far."""
    total = 0.0
    for port in stack.consumer_metrics_ports.values():
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith("orch_hub_call_seconds_count{") and 'status="429"' in line:
                    total += float(line.rsplit(" ", 1)[1])
    return total


async def _placed(stack: LocalStack, users: list[str]) -> Counter[str]:
    """Users placed per Hub."""
    names = [workspace_name(APP, u) for u in users]
    engine = make_engine(stack.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.exec(
                select(WorkspaceRecord.hub).where(col(WorkspaceRecord.name).in_(names))
            )
            return Counter(str(hub) for hub in rows.all())
    finally:
        await engine.dispose()


async def _one_burst(
    stack: LocalStack,
    http: aiohttp.ClientSession,
    app: CommandClient,
    hubs: list[HubClient],
    name: str,
    users: int,
) -> HubBurst:
    result = HubBurst(Burst(name, _users("hb", users)), SpawnPeaks([0] * len(stack.hubs)))
    before = await _hub_429s(http, stack)
    psutil.cpu_percent(None)  # starts the measuring interval
    watcher = asyncio.create_task(_watch(http, stack, result.peaks))
    try:
        await _burst(result.burst, lambda u: _orchestrated_app(app, u))
    finally:
        watcher.cancel()
    result.cpu_busy = psutil.cpu_percent(None)
    result.hub_429s = await _hub_429s(http, stack) - before
    result.placed = await _placed(stack, result.burst.users)
    for hub in hubs:  # each user's server lives on one Hub; stopping elsewhere is a no-op
        await asyncio.gather(*(hub.stop_server(workspace_name(APP, u)) for u in result.burst.users))
    return result


async def _run(stack: LocalStack, args: argparse.Namespace) -> list[tuple[HubBurst, HubBurst]]:
    key = stack.issue_app_key(APP)
    spread = f"{len(stack.hubs)} Hubs, limit {args.spawn_limit} each"
    alone = f"1 Hub, limit {args.spawn_limit}"
    others = [stack.hub_name(i) for i in range(1, len(stack.hubs))]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        hubs = [HubClient(http, hub.api_url, stack.service_token) for hub in stack.hubs]
        app = CommandClient(http, stack.gateway_url, key)
        pairs = []
        for round_ in range(args.rounds):
            done: dict[str, HubBurst] = {}
            for shape in (spread, alone) if round_ % 2 == 0 else (alone, spread):
                if shape == alone:
                    for name in others:
                        stack.orchestrator_cli("hubs", "drain", name)
                label = f"{shape} (round {round_ + 1})"
                done[shape] = await _one_burst(stack, http, app, hubs, label, args.users)
                if shape == alone:
                    for name in others:
                        stack.orchestrator_cli("hubs", "undrain", name)
            pairs.append((done[spread], done[alone]))
    return pairs


def _report(pairs: list[tuple[HubBurst, HubBurst]], args: argparse.Namespace) -> None:
    print(
        f"\nburst of {args.users} users opening a notebook at once; "
        f"{args.hubs} Hubs vs 1, spawn limit {args.spawn_limit} per Hub\n"
    )
    print(
        f"| {'burst':<32} | ready | app errors | Hub 429s | makespan | vs 1 Hub "
        "| peak spawns per Hub | peak total | samples | CPU busy |"
    )
    widths = [34, 7, 12, 10, 10, 10, 21, 12, 9, 10]
    print("|" + "|".join("-" * w for w in widths) + "|")
    for spread, alone in pairs:
        for run in (spread, alone):
            b = run.burst
            print(
                f"| {b.name:<32} | {b.ready:>2}/{len(b.users):<2} | {len(b.errors):>10} "
                f"| {run.hub_429s:>8.0f} | {b.makespan:>6.1f} s "
                f"| {b.makespan / alone.burst.makespan:>7.2f}x "
                f"| {' / '.join(str(p) for p in run.peaks.per_hub):<19} "
                f"| {run.peaks.total:>10} | {run.peaks.samples:>7} "
                f"| {run.cpu_busy:>7.0f} % |"
            )
    spread_total = sum(s.burst.makespan for s, _ in pairs)
    alone_total = sum(a.burst.makespan for _, a in pairs)
    print(
        f"\nmakespan over {args.hubs} Hubs / on 1 Hub, all rounds: "
        f"{spread_total / alone_total:.2f}x (ideal {1 / args.hubs:.2f}x)"
    )
    placed: Counter[str] = Counter()
    for spread, _ in pairs:
        placed.update(spread.placed)
    users = sum(placed.values())
    shares = ", ".join(f"{hub} {n} ({n / users:.0%})" for hub, n in sorted(placed.items()))
    print(f"users placed per Hub in the spread bursts (equal weights): {shares}")
    for spread, alone in pairs:
        for run in (spread, alone):
            for error, count in Counter(run.burst.errors).most_common(3):
                print(f"  {run.burst.name}: {count} x {error}")


def run_over_hubs(args: argparse.Namespace) -> int:
    """Start a stack with ``args.hubs`` Hubs, run the bursts, print, stop everything."""
    with tempfile.TemporaryDirectory(prefix="burst-hubs-") as state:
        options = StackOptions(
            consumers=args.consumers,
            hubs=args.hubs,
            concurrent_spawn_limit=args.spawn_limit,
            spawn_concurrency=args.spawn_limit,
            hub_service=False,
        )
        stack = LocalStack(Path(state), options)
        started = time.monotonic()
        stack.start()
        print(f"stack with {args.hubs} Hubs up in {time.monotonic() - started:.1f} s")
        try:
            _report(asyncio.run(_run(stack, args)), args)
        finally:
            stack.stop()
    return 0
