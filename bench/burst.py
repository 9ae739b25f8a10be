"""A burst of users opening a notebook at once, against a Hub that throttles spawns.

    .venv/bin/python bench/burst.py [--users 30 --spawn-limit 5 --consumers 2]
    .venv/bin/python bench/burst.py --hubs 2   # 40 users over 2 Hubs vs 1 (burst_hubs.py)

One stack (Hub ``concurrent_spawn_limit`` = --spawn-limit, the orchestrator's total
``ORCH_SPAWN_CONCURRENCY`` = the same), bursts of fresh users, every server
stopped between bursts:

1. naive: each "app" calls the Hub itself — create user, token, start, create a
   notebook — with no retries (what apps did before the orchestrator);
2. well-behaved direct client (the baseline): the same calls, at most
   --spawn-limit spawns at once, 429 waited out after ``Retry-After``;
3. orchestrator: each app sends ``open`` to the gateway and waits for the outcome.

2 and 3 run --rounds times in ABBA order (the machine's load drifts; a pair's ratio
and the ratio of the sums are printed).

Then the Hub API calls one ``open`` costs when the user's server already runs (from
the consumers' ``orch_hub_call_seconds`` counts). Prints a table; stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from consumers.hub_client import HubClient
from devstack.command_client import CommandClient
from devstack.stack import LocalStack, StackOptions

TIMEOUT = aiohttp.ClientTimeout(total=600)


@dataclass
class Burst:
    """Outcome of one burst."""

    name: str
    users: list[str]
    ready: int = 0
    errors: list[str] = field(default_factory=list)
    makespan: float = 0.0


async def _create_notebook(
    http: aiohttp.ClientSession, hub_url: str, user: str, token: str
) -> None:
    async with http.post(
        f"{hub_url}/user/{user}/api/contents/",
        json={"type": "notebook"},
        headers={"Authorization": f"token {token}"},
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"create notebook: HTTP {response.status}")


async def _user_token(
    http: aiohttp.ClientSession, api: str, auth: dict[str, str], user: str
) -> str:
    async with http.post(
        f"{api}/users/{user}/tokens", json={"expires_in": 3600, "note": "burst"}, headers=auth
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"token: HTTP {response.status}")
        token: str = (await response.json())["token"]
        return token


async def _naive_app(stack: LocalStack, http: aiohttp.ClientSession, user: str) -> None:
    api, auth = stack.hub.api_url, {"Authorization": f"token {stack.hub_admin_token}"}
    async with http.post(f"{api}/users/{user}", headers=auth) as response:
        if response.status != 201:
            raise RuntimeError(f"create user: HTTP {response.status}")
    token = await _user_token(http, api, auth, user)
    async with http.post(f"{api}/users/{user}/server", headers=auth) as response:
        if response.status not in (201, 202):
            raise RuntimeError(f"start: HTTP {response.status}")
        pending = response.status == 202
    if pending:
        async with http.get(f"{api}/users/{user}/server/progress", headers=auth) as progress:
            async for line in progress.content:
                if b'"failed": true' in line:
                    raise RuntimeError("start: spawn failed")
    await _create_notebook(http, stack.hub.url, user, token)


async def _polite_app(
    stack: LocalStack, http: aiohttp.ClientSession, hub: HubClient, user: str
) -> None:
    api, auth = stack.hub.api_url, {"Authorization": f"token {stack.hub_admin_token}"}
    await hub.ensure_user(user)
    token = await _user_token(http, api, auth, user)
    await hub.start_server(user)  # <= spawn limit at once; 429 waited out (Retry-After)
    await _create_notebook(http, stack.hub.url, user, token)


async def _orchestrated_app(app: CommandClient, user: str) -> None:
    view = await app.run({"type": "open", "user": user, "path": "burst.ipynb"}, within=600)
    if view["status"] != "succeeded":
        raise RuntimeError(f"open {view['status']}: {view['error']}")


async def _burst(burst: Burst, run_one: Any) -> None:
    started = time.monotonic()

    async def one(user: str) -> None:
        try:
            await run_one(user)
            burst.ready += 1
        except Exception as exc:
            burst.errors.append(f"{type(exc).__name__}: {exc}"[:120])

    await asyncio.gather(*(one(user) for user in burst.users))
    burst.makespan = time.monotonic() - started


async def _stop_all(hub: HubClient, users: list[str]) -> None:
    await asyncio.gather(*(hub.stop_server(user) for user in users))


async def _hub_calls(http: aiohttp.ClientSession, stack: LocalStack) -> tuple[float, float]:
    """(Hub API calls, contents calls) made so far by all consumers."""
    hub_calls = contents_calls = 0.0
    for port in stack.consumer_metrics_ports.values():
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith("orch_hub_call_seconds_count{"):
                    value = float(line.rsplit(" ", 1)[1])
                    if "/api/contents" in line:
                        contents_calls += value
                    else:
                        hub_calls += value
    return hub_calls, contents_calls


def _users(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:4]
    return [f"{prefix}{run}x{i}" for i in range(n)]


async def _run(stack: LocalStack, args: argparse.Namespace) -> None:
    app_key = stack.issue_app_key("burst")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        hub = HubClient(
            http,
            stack.hub.api_url,
            stack.service_token,
            spawn_concurrency=args.spawn_limit,
            spawn_timeout=600,
        )
        naive = Burst("naive direct (no retries)", _users("na", args.users))
        await _burst(naive, lambda u: _naive_app(stack, http, u))
        await _stop_all(hub, naive.users)

        app = CommandClient(http, stack.gateway_url, app_key)
        pairs: list[tuple[Burst, Burst]] = []
        for round_ in range(args.rounds):
            # ABBA order, so that a machine getting busier or quieter favours neither
            name = f"(round {round_ + 1})"
            orchestrated = Burst(f"orchestrator open {name}", _users("or", args.users))
            polite = Burst(
                f"direct, <= {args.spawn_limit} spawns {name}",
                _users("po", args.users),
            )
            for burst in (orchestrated, polite) if round_ % 2 == 0 else (polite, orchestrated):
                if burst is orchestrated:
                    await _burst(burst, lambda u: _orchestrated_app(app, u))
                else:
                    await _burst(burst, lambda u: _polite_app(stack, http, hub, u))
                if burst is orchestrated and round_ == 0:
                    per_consumer = await _opens_per_consumer(http, stack)
                    before = await _hub_calls(http, stack)
                    await _orchestrated_app(app, burst.users[0])
                    after = await _hub_calls(http, stack)
                await _stop_all(hub, burst.users)
            pairs.append((orchestrated, polite))
    print(f"opens done per consumer process (round 1): {per_consumer}")
    _report(naive, pairs, args, after[0] - before[0], after[1] - before[1])


async def _opens_per_consumer(http: aiohttp.ClientSession, stack: LocalStack) -> list[float]:
    counts = []
    for port in stack.consumer_metrics_ports.values():
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        counts.append(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('orch_commands_finished_total{status="succeeded",type="open"}')
            )
        )
    return counts


def _report(
    naive: Burst,
    pairs: list[tuple[Burst, Burst]],
    args: argparse.Namespace,
    hub_calls: float,
    contents: float,
) -> None:
    print(
        f"\nburst of {args.users} users, Hub concurrent_spawn_limit={args.spawn_limit}, "
        f"{args.consumers} consumers\n"
    )
    print(f"| {'burst':<40} | ready | app errors | makespan | vs direct |")
    print(f"|{'-' * 42}|-------|------------|----------|-----------|")
    rows = [(naive, pairs[0][1])]
    rows += [(burst, polite) for orchestrated, polite in pairs for burst in (polite, orchestrated)]
    for burst, baseline in rows:
        ready = f"{burst.ready:>2}/{len(burst.users):<2}"
        print(
            f"| {burst.name:<40} | {ready} | {len(burst.errors):>10} "
            f"| {burst.makespan:>6.1f} s | {burst.makespan / baseline.makespan:>8.2f}x |"
        )
    total_orchestrated = sum(o.makespan for o, _ in pairs)
    total_direct = sum(p.makespan for _, p in pairs)
    print(
        f"\norchestrator / well-behaved direct, all rounds: "
        f"{total_orchestrated / total_direct:.2f}x (target <= 1.15x)"
    )
    for burst in [naive, *(b for pair in pairs for b in pair)]:
        kinds: dict[str, int] = {}
        for error in burst.errors:
            kinds[error] = kinds.get(error, 0) + 1
        for error, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:3]:
            print(f"  {burst.name}: {count} x {error}")
    print(
        f"open for a user whose server runs: {hub_calls:.0f} Hub API call(s) (target <= 2), "
        f"{contents:.0f} contents call(s)"
    )


def main() -> int:
    """Start the stack, run the three bursts, print the table, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, help="per burst (default 30; 40 with --hubs)")
    parser.add_argument("--spawn-limit", type=int, help="per Hub (default 5; 2 with --hubs)")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="orchestrator/direct pairs")
    parser.add_argument(
        "--hubs", type=int, default=1, help="N > 1: N Hubs vs 1 Hub instead (bench/burst_hubs.py)"
    )
    args = parser.parse_args()
    if args.hubs > 1:
        from bench.burst_hubs import run_over_hubs

        args.users = args.users or 40
        args.spawn_limit = args.spawn_limit or 2
        return run_over_hubs(args)
    args.users = args.users or 30
    args.spawn_limit = args.spawn_limit or 5
    with tempfile.TemporaryDirectory(prefix="burst-") as state:
        options = StackOptions(
            consumers=args.consumers,
            concurrent_spawn_limit=args.spawn_limit,
            spawn_concurrency=args.spawn_limit,
            hub_service=False,
        )
        stack = LocalStack(Path(state), options)
        stack.start()
        try:
            asyncio.run(_run(stack, args))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
