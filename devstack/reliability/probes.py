"""Probes into a running local stack for the reliability scenarios.

Memory (RSS) of each process group, queue depths from the management API, messages
published straight onto a queue and read back from the dead-letter queue, and
Prometheus counters scraped from ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import aio_pika
import aiohttp
import psutil

from devstack.process import snapshot_tree
from devstack.stack import LocalStack
from schemas.topology import DEAD_LETTER_QUEUE


def tree_rss(pids: Iterable[int]) -> int:
    """Resident memory (bytes) of the processes ``pids`` and all their descendants."""
    total = 0
    for process in snapshot_tree(pids):
        try:
            total += int(process.memory_info().rss)
        except psutil.Error:
            continue
    return total


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time (user + system, s) used so far by ``pids`` and all their descendants
    (the descendants' own counters: a process that ended since is not counted)."""
    total = 0.0
    for process in snapshot_tree(pids):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def process_groups(stack: LocalStack) -> dict[str, Callable[[], list[int]]]:
    """The stack's processes by role (name → a function giving their PIDs now): the
    broker (every node), the Hub (with its proxy and single-user servers), each
    gateway and consumer, and PostgreSQL when the stack has it."""
    groups: dict[str, Callable[[], list[int]]] = {
        "broker": stack.broker.process_ids,
        "hub": stack.hub.process_ids,
    }
    if stack.gateway is not None:
        groups["gateway"] = stack.gateway.process_ids
    for index, (gateway, _) in enumerate(stack.extra_gateways, start=1):
        groups[f"gateway-{index}"] = gateway.process_ids
    for index, consumer in enumerate(stack.consumers):
        groups[f"consumer-{index}"] = consumer.process_ids
    if stack.postgres is not None:
        groups["postgres"] = stack.postgres.process_ids
    return groups


def cpu_by_group(groups: Mapping[str, Callable[[], list[int]]]) -> dict[str, float]:
    """CPU seconds used so far by each group (see :func:`tree_cpu_seconds`)."""
    return {name: tree_cpu_seconds(pids()) for name, pids in groups.items()}


@dataclass
class MemorySeries:
    """RSS samples per process group (name → [(monotonic time, bytes)])."""

    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def sample(self, groups: Mapping[str, Callable[[], list[int]]]) -> None:
        """Record one sample for every group; each group names a function giving its PIDs."""
        now = time.monotonic()
        for name, pids in groups.items():
            self.samples.setdefault(name, []).append((now, tree_rss(pids())))

    def growth(self, warmup_fraction: float = 0.25) -> dict[str, float]:
        """Relative RSS growth per group: last sample vs. the median just after warm-up.

        The baseline is the median of the samples in the window that follows the warm-up
        (a quarter of the samples long), so one outlier does not decide it.
        """
        result: dict[str, float] = {}
        for name, series in self.samples.items():
            values = [rss for _, rss in series]
            if len(values) < 4:
                continue
            start = int(len(values) * warmup_fraction)
            window = values[start : start + max(1, len(values) // 4)]
            baseline = median(window)
            result[name] = (values[-1] - baseline) / baseline if baseline else 0.0
        return result

    def quarters_mib(self) -> dict[str, list[int]]:
        """RSS (MiB) of each group at the end of each quarter of the run: the trend."""
        result: dict[str, list[int]] = {}
        for name, series in self.samples.items():
            if series:
                points = [max(0, len(series) * q // 4 - 1) for q in (1, 2, 3, 4)]
                result[name] = [round(series[i][1] / 2**20) for i in points]
        return result


async def queue_depths(management_url: str, auth: dict[str, str]) -> dict[str, int]:
    """Ready + unacked messages per queue, from the RabbitMQ management API."""
    async with (
        aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(f"{management_url}/api/queues?columns=name,messages") as response,
    ):
        response.raise_for_status()
        queues: list[dict[str, Any]] = await response.json()
    return {q["name"]: int(q.get("messages") or 0) for q in queues}


@dataclass(frozen=True)
class RawMessage:
    """A message to publish straight onto a queue, bypassing the gateway."""

    body: bytes
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)


async def publish_raw(amqp_url: str, queue: str, messages: Iterable[RawMessage]) -> None:
    """Publish ``messages`` persistently to ``queue`` via the default exchange, confirmed."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for message in messages:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=message.headers,
                    message_id=message.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )


@dataclass(frozen=True)
class DeadLetter:
    """A message taken from the dead-letter queue."""

    message_id: str | None
    headers: dict[str, Any]
    body: bytes


async def take_dead_letters(
    amqp_url: str, wanted: Iterable[str], *, within: float
) -> dict[str, DeadLetter]:
    """Take (ack) dead letters until all ``wanted`` message ids were seen, or ``within`` s.

    Returns the wanted ones found; other dead letters are taken too and dropped.
    """
    missing = set(wanted)
    found: dict[str, DeadLetter] = {}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(DEAD_LETTER_QUEUE, ensure=True)
        deadline = time.monotonic() + within
        while missing and time.monotonic() < deadline:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.2)  # nothing queued yet: the consumers are still at it
                continue
            await message.ack()
            if message.message_id in missing:
                missing.discard(message.message_id)
                found[message.message_id] = DeadLetter(
                    message.message_id, dict(message.headers or {}), message.body
                )
    return found


async def prometheus_counter(url: str, name: str) -> float | None:
    """Sum of all samples of counter ``name`` at ``url`` (a ``/metrics`` page); None if absent."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(url) as response,
        ):
            if response.status != 200:
                return None
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


# Expected while a broker is away: aio-pika's reconnect attempts and the forced close.
_BROKER_AWAY = (
    "Connection attempt to",
    "error when creating transport",
    "Unexpected connection",
    "Cancelling cause reader",
    "Callback <OneShotCallback: cb=<bound method RobustChannel._on_close",
)


def logged_errors(logs_dir: Path, *, per_process: int = 12) -> list[str]:
    """The last ``per_process`` distinct error and exception events each process of the
    stack logged (JSON lines), without the broker reconnect noise: evidence to print
    with a scenario's problems."""
    evidence: list[str] = []
    for path in sorted(logs_dir.glob("*.log")):
        seen: dict[str, str] = {}  # by event, the latest last
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            level, event = entry.get("level"), str(entry.get("event", ""))
            if level not in ("error", "critical") and "exception" not in entry:
                continue
            if event.startswith(_BROKER_AWAY):
                continue
            detail = str(entry.get("exception", "")).strip().splitlines()[-1:]
            key = re.sub(r"0x[0-9a-f]+", "0x…", event)[:160]
            seen.pop(key, None)
            seen[key] = f"{key} {' '.join(detail)[:200]}".strip()
        evidence += [f"{path.stem}: {text}" for text in list(seen.values())[-per_process:]]
    return evidence
