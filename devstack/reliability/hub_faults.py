"""Scenario 3: the consumers reach the real Hub through a fault proxy that answers 5xx,
429 with ``Retry-After``, drops connections and adds latency; commands still succeed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp

from devstack.fault_proxy import FaultProxy, FaultRule
from devstack.reliability.load import audit_versions, run_command
from devstack.reliability.notebooks import NOTEBOOK_PATH, put_notebook
from devstack.reliability.probes import prometheus_counter
from devstack.reliability.result import ScenarioResult
from devstack.stack import LocalStack

RETRY_COUNTERS = ("orch_hub_call_retries_total", "orch_command_retries_total")


@contextlib.contextmanager
def hub_behind_fault_proxy(stack: LocalStack) -> Iterator[FaultProxy]:
    """Route the stack's consumers to the Hub through a fault proxy for the block.

    Enter before ``stack.start()``: the consumers read the Hub URLs when they start.
    The test's own calls (``stack.hub.url``) still go straight to the Hub.
    """
    proxy = FaultProxy(stack.hub.url, stack.logs_dir / "fault-proxy.log")
    proxy.start()
    stack.options.hub_api_url_override = f"{proxy.url}/hub/api"
    stack.options.hub_public_url_override = proxy.url
    try:
        yield proxy
    finally:
        proxy.stop()


def hub_fault_rules(server_errors: float = 0.2) -> list[FaultRule]:
    """The fault mix: one of each kind early on (so a short run sees every kind), then
    ``server_errors`` of all requests 502/503, about 4% 429 with ``Retry-After: 1``,
    4% dropped connections, 14% delayed by 0.3 s."""
    half = server_errors / 2
    mix = [
        FaultRule("status", status=503, fraction=half),
        FaultRule("status", status=502, fraction=half / (1 - half)),
        FaultRule("status", status=429, retry_after=1, fraction=0.05),
        FaultRule("drop", fraction=0.05),
        FaultRule("delay", delay_seconds=0.3, fraction=0.2),
    ]
    first_of_each = [
        FaultRule("drop", fraction=0.5, count=1),
        FaultRule("status", status=429, retry_after=1, fraction=0.5, count=1),
        FaultRule("delay", delay_seconds=0.3, fraction=0.5, count=1),
    ]
    return first_of_each + mix


async def _retry_counts(stack: LocalStack) -> dict[str, float]:
    """Each retry counter summed over the consumers' ``/metrics``."""
    totals = dict.fromkeys(RETRY_COUNTERS, 0.0)
    for port in stack.consumer_metrics_ports.values():
        for name in RETRY_COUNTERS:
            value = await prometheus_counter(f"http://127.0.0.1:{port}/metrics", name)
            totals[name] += value or 0.0
    return totals


async def _user_journey(
    http: aiohttp.ClientSession, stack: LocalStack, app_key: str, user: str, saves: int
) -> list[dict[str, Any]]:
    """open → (change content, save) x ``saves`` → stop-server; the final views."""

    async def run(command: dict[str, Any]) -> dict[str, Any]:
        return await run_command(http, stack.gateway_url, app_key, command, within=300)

    views = [await run({"type": "open", "user": user, "path": NOTEBOOK_PATH})]
    for revision in range(saves):
        if views[-1]["status"] != "succeeded":
            break
        await put_notebook(http, stack, user, NOTEBOOK_PATH, f"{user} revision {revision}")
        views.append(await run({"type": "save", "user": user, "path": NOTEBOOK_PATH}))
    views.append(await run({"type": "stop-server", "user": user}))
    return views


async def _traffic(
    stack: LocalStack, app_key: str, *, users: int, saves: int, ensure_users: int
) -> tuple[list[dict[str, Any]], float]:
    tag = uuid.uuid4().hex[:5]
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=400)) as http:
        journeys = [_user_journey(http, stack, app_key, f"f{tag}j{i}", saves) for i in range(users)]
        singles = [
            run_command(
                http,
                stack.gateway_url,
                app_key,
                {"type": "ensure-user", "user": f"f{tag}e{i}"},
                within=300,
            )
            for i in range(ensure_users)
        ]
        done = await asyncio.gather(*journeys, asyncio.gather(*singles))
    views = [view for group in done for view in group]
    return views, time.monotonic() - started


async def hub_faults(
    stack: LocalStack,
    app_key: str,
    proxy: FaultProxy,
    *,
    users: int,
    saves: int,
    ensure_users: int,
    server_errors: float = 0.2,
    baseline: bool = True,
) -> ScenarioResult:
    """Scenario 3: user journeys (open, saves, stop-server) for ``users`` users plus
    ``ensure-user`` for ``ensure_users`` more, while the proxy injects faults; with
    ``baseline`` the same traffic first runs without faults, for the ratio.

    Holds when: every command succeeds; every save makes exactly one version; each
    kind of fault was injected at least once.
    """
    result = ScenarioResult(f"3. Hub faults ({server_errors:.0%} 5xx, 429, drops, latency)")
    sizes = {"users": users, "saves": saves, "ensure_users": ensure_users}
    if baseline:
        proxy.clear()
        clean, clean_seconds = await _traffic(stack, app_key, **sizes)
        bad = [v["status"] for v in clean if v["status"] != "succeeded"]
        result.check(not bad, f"baseline (no faults) commands did not succeed: {bad}")
        result.figures["baseline, no faults (s)"] = round(clean_seconds, 1)
    retries_before = await _retry_counts(stack)
    proxy.reset_stats()
    proxy.set_rules(*hub_fault_rules(server_errors))
    try:
        views, seconds = await _traffic(stack, app_key, **sizes)
    finally:
        proxy.clear()
    stats = proxy.stats()
    retries_after = await _retry_counts(stack)
    save_ids = [str(v["id"]) for v in views if v["type"] == "save"]
    versions = await audit_versions(stack.database_url, save_ids)
    faults: dict[str, int] = stats.get("faults", {})
    result.figures.update(
        {
            "commands": len(views),
            "with faults (s)": round(seconds, 1),
            "Hub requests through the proxy": stats.get("total", 0),
            "faults injected": faults,
            "in-process retries (tenacity)": retries_after[RETRY_COUNTERS[0]]
            - retries_before[RETRY_COUNTERS[0]],
            "retry-queue rounds": retries_after[RETRY_COUNTERS[1]]
            - retries_before[RETRY_COUNTERS[1]],
            "attempts > 1": sum(1 for v in views if v.get("attempts", 1) > 1),
            "saves / versions made": f"{len(save_ids)} / {versions.versions}",
        }
    )
    if baseline:
        ratio = seconds / max(result.figures["baseline, no faults (s)"], 1e-9)
        result.figures["ratio with / without faults"] = round(ratio, 2)
    failed = {v["id"]: v.get("error") or v["status"] for v in views if v["status"] != "succeeded"}
    result.check(not failed, f"commands that did not succeed: {failed}")
    result.check(versions.versions == len(save_ids), "saves did not make one version each")
    missing = {"status", "drop", "delay"} - set(faults)
    result.check(not missing, f"fault kinds never injected: {sorted(missing)}")
    return result
