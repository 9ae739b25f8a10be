"""Scenarios where processes die: consumers SIGKILLed under load (2), Hub restarted in
the middle of spawns (4)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterable

import aiohttp
import psutil

from devstack.reliability.load import (
    CommandLoad,
    audit_versions,
    command_records,
    created_twice,
    wait_until_final,
)
from devstack.reliability.notebooks import (
    NOTEBOOK_PATH,
    SaveLoop,
    open_notebooks,
    run_commands,
)
from devstack.reliability.result import ScenarioResult
from devstack.reliability.steady_load import ensure_user_commands
from devstack.stack import LocalStack

_LOAD_LIMIT_SECONDS = 900.0


def fresh_users(count: int, tag: str) -> list[str]:
    prefix = f"{tag}{uuid.uuid4().hex[:5]}"
    return [f"{prefix}n{i}" for i in range(count)]


async def kill_consumer(stack: LocalStack, index: int) -> None:
    """SIGKILL consumer ``index`` (by its PID), reap it and start a new one in its place."""
    victim = stack.consumers[index]
    psutil.Process(victim.pid).kill()
    await asyncio.to_thread(victim.stop, 0)  # reaps it; nothing is left to signal
    await asyncio.to_thread(stack.start_consumer, index)


async def consumer_kills_under_load(
    stack: LocalStack,
    app_key: str,
    *,
    rate: float,
    kills: int,
    kill_every: float,
    save_users: int,
    drain_timeout: float = 600.0,
) -> ScenarioResult:
    """Scenario 2: ``kills`` times, every ``kill_every`` s, SIGKILL a consumer (round
    robin) and start it again, under ``ensure-user`` load at ``rate`` and save loops
    for ``save_users`` users whose notebooks change before every save.

    Holds when: every accepted command reaches ``succeeded``; every save made exactly
    one version (none twice, none lost); no user was reported created twice; every
    consumer runs at the end.
    """
    result = ScenarioResult(f"2. consumer SIGKILL x{kills} under load")
    users = fresh_users(save_users, "k")
    not_open = await open_notebooks(stack, app_key, users)
    result.check(not not_open, f"notebooks could not be opened for {not_open}")

    stop = asyncio.Event()
    load = CommandLoad(stack.gateway_url, app_key, ensure_user_commands(20), rate=rate)
    load_task = asyncio.create_task(load.run(_LOAD_LIMIT_SECONDS, stop))
    loops = [SaveLoop(stack, app_key, u) for u in users]
    loop_tasks = [asyncio.create_task(loop.run(stop)) for loop in loops]
    started = time.monotonic()
    for kill in range(kills):
        await asyncio.sleep(kill_every)  # scenario timeline: steady traffic between kills
        await kill_consumer(stack, kill % len(stack.consumers))
    await asyncio.sleep(kill_every)  # and some traffic after the last restart
    stop.set()
    report = await load_task
    await asyncio.gather(*loop_tasks)
    traffic_seconds = time.monotonic() - started

    save_ids = [i for loop in loops for i in loop.command_ids]
    all_ids = [*report.accepted_ids, *save_ids]
    final = await wait_until_final(stack.database_url, all_ids, within=drain_timeout)
    records = await command_records(stack.database_url, all_ids)
    versions = await audit_versions(stack.database_url, save_ids)
    redelivered = sum(1 for r in records.values() if r.attempts > 1)
    result.figures.update(
        {
            "traffic time (s)": round(traffic_seconds, 1),
            "ensure-user rate (cmd/s)": rate,
            "ensure-user accepted": len(report.accepted_ids),
            "answers by status": report.status_counts(),
            "saves sent": len(save_ids),
            "versions made by saves": versions.versions,
            "final states": final.counts(),
            "commands attempted more than once": redelivered,
            "drain time after traffic (s)": round(final.seconds, 1),
        }
    )
    unfinished = final.unfinished()
    result.check(not unfinished, f"{len(unfinished)} accepted commands lost or unfinished")
    failed = final.counts().get("failed", 0)
    result.check(failed == 0, f"{failed} accepted commands failed")
    result.check(
        not versions.duplicated_commands,
        f"saves that made two or more versions: {versions.duplicated_commands}",
    )
    result.check(
        versions.versions == len(save_ids),
        f"{len(save_ids)} saves of changed content made {versions.versions} versions",
    )
    twice = created_twice(records.values())
    result.check(not twice, f"users reported as created twice: {twice}")
    dead = [c.name for c in stack.consumers if not c.is_running()]
    result.check(not dead, f"consumers not running at the end: {dead}")
    return result


async def _pending_spawns(stack: LocalStack, users: list[str]) -> int:
    headers = {"Authorization": f"token {stack.service_token}"}
    pending = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for user in users:
            async with http.get(f"{stack.hub.api_url}/users/{user}", headers=headers) as resp:
                if resp.status == 200 and (await resp.json()).get("pending") == "spawn":
                    pending += 1
    return pending


async def hub_restart_mid_spawn(
    stack: LocalStack, app_key: str, *, users: int, within: float = 300.0
) -> ScenarioResult:
    """Scenario 4: restart the Hub while ``start-server`` / ``open`` commands for
    ``users`` fresh users are spawning. A baseline batch of the same size runs first,
    undisturbed, for the ratio.

    Holds when: every command of the disturbed batch succeeds (after retries).
    """
    result = ScenarioResult("4. Hub restart in the middle of spawns")

    def batch(names: list[str]) -> list[dict[str, str]]:
        return [
            {"type": "start-server", "user": u}
            if i % 2 == 0
            else {"type": "open", "user": u, "path": NOTEBOOK_PATH}
            for i, u in enumerate(names)
        ]

    started = time.monotonic()
    baseline = await run_commands(stack, app_key, batch(fresh_users(users, "b")), within=within)
    baseline_seconds = time.monotonic() - started

    names = fresh_users(users, "h")
    started = time.monotonic()
    disturbed = asyncio.create_task(run_commands(stack, app_key, batch(names), within=within))
    pending = 0
    while pending == 0 and not disturbed.done() and time.monotonic() - started < 120:
        await asyncio.sleep(0.2)  # the Hub has no event for "spawn pending": poll it
        pending = await _pending_spawns(stack, names)
    restart_at = time.monotonic() - started
    await asyncio.to_thread(stack.hub.restart)
    restart_seconds = time.monotonic() - started - restart_at
    views = await disturbed
    seconds = time.monotonic() - started
    records = await command_records(stack.database_url, [str(v["id"]) for v in views])
    result.figures.update(
        {
            "commands per batch": users,
            "baseline batch (s)": round(baseline_seconds, 1),
            "spawns pending when the Hub restarted": pending,
            "Hub restart began after (s)": round(restart_at, 1),
            "Hub restart took (s)": round(restart_seconds, 1),
            "disturbed batch (s)": round(seconds, 1),
            "ratio disturbed / baseline": round(seconds / max(baseline_seconds, 1e-9), 2),
            "attempts per command": sorted(r.attempts for r in records.values()),
            "final states": _counts(v["status"] for v in views),
        }
    )
    bad_baseline = [v["status"] for v in baseline if v["status"] != "succeeded"]
    result.check(not bad_baseline, f"baseline commands did not succeed: {bad_baseline}")
    result.check(pending > 0, "no spawn was pending when the Hub restarted")
    failed = {v["user"]: v.get("error") or v["status"] for v in views if v["status"] != "succeeded"}
    result.check(not failed, f"commands that did not succeed: {failed}")
    return result


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))
