"""Scenarios under a steady stream of cheap commands: broker restart (1) and soak (6).

The load is ``ensure-user`` for a small set of users: after the first command per user
each is one Hub call answered 409, so the Hub is not the subject, the bus path is.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from devstack.reliability.load import (
    CommandFactory,
    CommandLoad,
    LoadReport,
    wait_until_final,
)
from devstack.reliability.probes import (
    MemorySeries,
    logged_errors,
    process_groups,
    queue_depths,
)
from devstack.reliability.result import ScenarioResult
from devstack.stack import LocalStack
from schemas.topology import Partitioning


def ensure_user_commands(users: int, prefix: str | None = None) -> CommandFactory:
    """``ensure-user`` commands cycling over ``users`` fresh usernames."""
    tag = prefix or f"r{uuid.uuid4().hex[:6]}"
    return lambda index: {"type": "ensure-user", "user": f"{tag}u{index % users}"}


def _load_figures(result: ScenarioResult, report: LoadReport) -> None:
    p50, p99 = report.latency_quantile(0.5), report.latency_quantile(0.99)
    result.figures.update(
        {
            "target rate (cmd/s)": report.rate,
            "achieved rate (cmd/s)": round(report.achieved_rate(), 1),
            "requests sent": len(report.answers),
            "sends skipped (too many in flight)": report.skipped,
            "answers by status": report.status_counts(),
            "202 latency p50 / p99 (ms)": _ms(p50) + " / " + _ms(p99),
            "503 latency p50 / p99 (ms)": _ms(report.latency_quantile(0.5, status=503))
            + " / "
            + _ms(report.latency_quantile(0.99, status=503)),
        }
    )
    server_errors = sum(n for s, n in report.status_counts().items() if s >= 500 and s != 503)
    result.check(server_errors == 0, f"{server_errors} answers were 5xx other than 503")
    errors = Counter(a.error for a in report.answers if a.error)
    result.evidence += [f"load: {n} times: {error}" for error, n in errors.most_common(5)]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


_LOAD_LIMIT_SECONDS = 600.0  # a bound on any load; scenarios stop theirs much earlier


@dataclass(frozen=True)
class BrokerOutage:
    """Monotonic times of one broker outage."""

    stop_called: float
    down: float  # the broker process has exited
    start_called: float
    up: float  # the broker answers again (management API)


async def _outage(stack: LocalStack, after: float, down_for: float) -> BrokerOutage:
    await asyncio.sleep(after)  # scenario timeline: the fault comes after steady load
    stop_called = time.monotonic()
    await asyncio.to_thread(stack.broker.stop_broker_only)
    down = time.monotonic()
    await asyncio.sleep(down_for)  # scenario timeline: how long the broker stays down
    start_called = time.monotonic()
    await asyncio.to_thread(stack.broker.start_again)
    return BrokerOutage(stop_called, down, start_called, time.monotonic())


async def broker_restart_under_load(
    stack: LocalStack,
    app_key: str,
    *,
    rate: float,
    stop_after: float,
    down_for: float,
    load_after_up: float,
    users: int = 20,
    drain_timeout: float = 180.0,
) -> ScenarioResult:
    """Scenario 1: under load, stop the broker after ``stop_after`` s (graceful, data
    kept), start it again ``down_for`` s after it exited (same ports), keep the load on
    for ``load_after_up`` s more.

    Holds when: a request sent while the broker is down is answered 503, or 202 only
    once the broker is back (the gateway waits up to its publish timeout for the
    confirm); every command that got a 202 reaches ``succeeded``; no 5xx other than
    503. Reports the recovery time: first 202 after the restart began, minus when the
    broker answered again.
    """
    result = ScenarioResult("1. broker restart under load")
    load = CommandLoad(stack.gateway_url, app_key, ensure_user_commands(users), rate=rate)
    stop = asyncio.Event()
    load_task = asyncio.create_task(load.run(_LOAD_LIMIT_SECONDS, stop))
    outage = await _outage(stack, stop_after, down_for)
    await asyncio.sleep(load_after_up)  # scenario timeline: load after the recovery
    stop.set()
    report = await load_task
    _load_figures(result, report)

    in_outage = report.sent_between(outage.down, outage.start_called)
    accepted_in_outage = [a for a in in_outage if a.status == 202 and a.answered_at < outage.up]
    not_503 = sorted({a.status for a in in_outage if a.status not in (202, 503)})
    after = [a for a in report.answers if a.status == 202 and a.sent_at >= outage.start_called]
    first_202 = min((a.answered_at for a in after), default=None)
    final = await wait_until_final(stack.database_url, report.accepted_ids, within=drain_timeout)
    unfinished = final.unfinished()
    result.figures.update(
        {
            "broker stop (s)": round(outage.down - outage.stop_called, 1),
            "broker boot (s)": round(outage.up - outage.start_called, 1),
            "requests sent while down": len(in_outage),
            "202 before the broker was back": len(accepted_in_outage),
            "recovery: first 202 after broker up (s)": (
                "never" if first_202 is None else round(first_202 - outage.up, 2)
            ),
            "accepted commands": len(report.accepted_ids),
            "final states": final.counts(),
            "drain time after load (s)": round(final.seconds, 1),
        }
    )
    result.check(len(in_outage) > 0, "no request was sent while the broker was down")
    result.check(
        not accepted_in_outage, f"{len(accepted_in_outage)} got 202 before the broker was back"
    )
    result.check(not not_503, f"answers other than 503/202 to requests sent while down: {not_503}")
    result.check(first_202 is not None, "no command accepted after the broker came back")
    result.check(not unfinished, f"{len(unfinished)} accepted commands lost or unfinished")
    failed = final.counts().get("failed", 0)
    result.check(failed == 0, f"{failed} accepted commands failed")
    if result.problems:
        result.evidence += logged_errors(stack.logs_dir)
    return result


async def soak(
    stack: LocalStack,
    app_key: str,
    *,
    rate: float,
    seconds: float,
    sample_every: float = 5.0,
    users: int = 50,
    max_growth: float = 0.10,
    drain_timeout: float = 300.0,
) -> ScenarioResult:
    """Scenario 6: ``rate`` commands/s for ``seconds`` s, sampling RSS and queue depths.

    Holds when: the RSS of each process group (gateway, each consumer, Hub with its
    proxy, broker) grew less than ``max_growth`` from just after warm-up (the first
    quarter) to the end; the command queues did not grow (their depth in the last
    quarter is not above the first quarter after warm-up plus one second of load);
    every accepted command succeeded.
    """
    result = ScenarioResult(f"6. soak {seconds:.0f} s")
    memory = MemorySeries()
    groups = process_groups(stack)
    partition_queues = set(Partitioning(stack.options.partitions).queues())
    depths: list[int] = []
    stop = asyncio.Event()
    load = CommandLoad(stack.gateway_url, app_key, ensure_user_commands(users), rate=rate)
    load_task = asyncio.create_task(load.run(seconds, stop))
    while not load_task.done():
        memory.sample(groups)
        all_depths = await queue_depths(stack.broker.management_url, stack.broker.management_auth)
        depths.append(sum(n for q, n in all_depths.items() if q in partition_queues))
        await asyncio.wait({load_task}, timeout=sample_every)
    report = load_task.result()
    memory.sample(groups)
    _load_figures(result, report)
    final = await wait_until_final(stack.database_url, report.accepted_ids, within=drain_timeout)

    growth = memory.growth()
    quarter = max(1, len(depths) // 4)
    early = max(depths[quarter : 2 * quarter] or [0])
    late = max(depths[-quarter:] or [0])
    result.figures.update(
        {
            "samples": len(depths),
            "RSS at end of each quarter (MiB)": memory.quarters_mib(),
            "RSS growth after warm-up (%)": {k: round(v * 100, 1) for k, v in growth.items()},
            "command queue depth max / early / late": f"{max(depths or [0])} / {early} / {late}",
            "final states": final.counts(),
            "drain time after load (s)": round(final.seconds, 1),
        }
    )
    grown = {k: round(v * 100, 1) for k, v in growth.items() if v >= max_growth}
    result.check(not grown, f"RSS grew by {max_growth:.0%} or more: {grown}")
    result.check(
        late <= early + rate, f"command queues grew: {early} early vs {late} late messages"
    )
    unfinished = final.unfinished()
    result.check(not unfinished, f"{len(unfinished)} accepted commands lost or unfinished")
    failed = final.counts().get("failed", 0)
    result.check(failed == 0, f"{failed} accepted commands failed")
    return result
