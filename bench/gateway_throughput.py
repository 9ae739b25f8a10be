"""Gateway throughput and accept latency against a raw aio-pika publisher, same broker.

Starts a private RabbitMQ and one gateway process (no Hub, no consumers) through
LocalStack, then, in this process:

1. closed loop, ``--concurrency`` workers, ``--commands`` POSTs of ``ensure-user`` to
   the real gateway over HTTP (aiohttp client, keep-alive): accepted/s, p50/p99;
2. the baseline: a raw aio-pika publisher with confirms, ``mandatory``, persistent
   messages of the same size to the same exchange, same concurrency: msg/s, p50/p99;
3. open loop at a fixed rate (``--rate``, default 1,000/s) for ``--seconds`` against the
   gateway, latency measured from each request's scheduled start (no coordinated
   omission), and the same for the raw publisher;
4. closed loop with ``wrk`` (C, one thread, same concurrency, unique usernames from a
   Lua script), when ``wrk`` is installed (``make bench`` installs it): the gateway's
   rate without the Python client's CPU on the same two cores.

Prints the figures, the ratio gateway/raw and, per phase, the broker's WAL rollovers
(each stalls confirms). Partition queues are purged after each phase (nothing consumes
them). Everything started is stopped at the end.

    .venv/bin/python bench/gateway_throughput.py [--commands 5000 --concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aiohttp
import psutil

from devstack.stack import LocalStack, StackOptions
from schemas.commands import CommandMessage, EnsureUser, utcnow
from schemas.topology import COMMANDS_EXCHANGE, HEADER_COMMAND_ID, Partitioning

Send = Callable[[int], Awaitable[bool]]


@dataclass
class Figures:
    """Outcome of one phase."""

    name: str
    ok: int
    failed: int
    seconds: float
    latencies: list[float]
    wal_rollovers: int | None = None  # the broker's quorum-queue WAL files begun meanwhile

    @property
    def rate(self) -> float:
        """Successful operations per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def line(self) -> str:
        """One printable line."""
        return (
            f"{self.name:<34} {self.rate:8.0f} /s   p50 {self.percentile(50):6.1f} ms"
            f"   p99 {self.percentile(99):6.1f} ms   max {self.percentile(100):7.1f} ms"
            f"   ok {self.ok} failed {self.failed}"
            + (f"   broker WAL rollovers {self.wal_rollovers}" if self.wal_rollovers else "")
        )


@dataclass
class ReportedFigures(Figures):
    """A phase whose load generator reports percentiles (ms) instead of samples."""

    reported: dict[float, float] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        """The generator's own figure for ``q`` (50, 99 or 100)."""
        return self.reported.get(q, float("nan"))


@contextlib.contextmanager
def no_collector_pauses() -> Iterator[None]:
    """This process's cyclic GC off for one measured phase.

    An open-loop phase keeps tens of thousands of tasks alive; a full collection of them
    paused this load generator for 100-250 ms, which showed up as latency of whatever
    it was measuring (the raw publisher included).
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def newest_wal(mnesia_dir: Path) -> int:
    """Number of the broker's current quorum-queue WAL file (Ra names them 00000001.wal, …).

    A rollover (``raft.wal_max_size_bytes`` reached) stalls publisher confirms: publishes
    started around one waited 30-200 ms here, for the raw publisher as for the gateway
    (such stalls also come without a rollover; bench/README.md).
    """
    numbers = [int(wal.stem) for wal in mnesia_dir.glob("*/quorum/*/*.wal") if wal.stem.isdigit()]
    return max(numbers, default=0)


async def closed_loop(name: str, send: Send, total: int, concurrency: int) -> Figures:
    """``concurrency`` workers send ``total`` operations back to back."""
    counter = iter(range(total))
    latencies: list[float] = []
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for i in counter:
            started = time.perf_counter()
            if await send(i):
                latencies.append(time.perf_counter() - started)
            else:
                failed += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(name, len(latencies), failed, time.perf_counter() - began, latencies)


async def open_loop(name: str, send: Send, rate: float, seconds: float) -> Figures:
    """Start one operation every ``1/rate`` s; latency counts from the scheduled start."""
    total = int(rate * seconds)
    latencies: list[float] = []
    failed = 0
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def one(i: int, scheduled: float) -> None:
        nonlocal failed
        if await send(i):
            latencies.append(loop.time() - scheduled)
        else:
            failed += 1

    tasks = []
    for i in range(total):
        scheduled = began + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return Figures(name, len(latencies), failed, loop.time() - began, latencies)


def gateway_sender(
    session: aiohttp.ClientSession, url: str, key: str, run: str, *, expect: int = 202
) -> Send:
    """POST one ensure-user command per call; True when answered ``expect``."""
    headers = {"Authorization": f"Bearer {key}"}

    async def send(i: int) -> bool:
        body = {"type": "ensure-user", "user": f"{run}-{i}"}
        async with session.post(f"{url}/v1/commands", json=body, headers=headers) as resp:
            await resp.read()
            return resp.status == expect

    return send


def raw_sender(exchange: aio_pika.abc.AbstractExchange, run: str) -> Send:
    """Publish one command message (as the gateway would) per call; True when confirmed."""

    async def send(i: int) -> bool:
        command_id = uuid.uuid4()
        message = CommandMessage(
            id=command_id,
            app="bench",
            correlation_id=str(uuid.uuid4()),
            accepted_at=utcnow(),
            command=EnsureUser(user=f"{run}-{i}"),
        )
        await exchange.publish(
            aio_pika.Message(
                message.model_dump_json().encode(),
                headers={HEADER_COMMAND_ID: str(command_id)},
                message_id=str(command_id),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=f"{run}-{i}",
            mandatory=True,
            timeout=5,
        )
        return True

    return send


async def purge(channel: aio_pika.abc.AbstractChannel, partitions: int) -> None:
    """Empty the partition queues (nothing consumes them in this benchmark)."""
    for name in Partitioning(partitions).queues():
        queue = await channel.get_queue(name, ensure=False)
        await queue.purge()


async def run(stack: LocalStack, key: str, args: argparse.Namespace) -> tuple[list[Figures], float]:
    """The aiohttp and aio-pika phases; also the gateway's CPU µs per command."""
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, 64) * 4)
    connection = await aio_pika.connect(stack.broker.amqp_url)
    results: list[Figures] = []
    async with aiohttp.ClientSession(connector=connector) as session, connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE)
        gateway = gateway_sender(session, stack.gateway_url, key, "warm")
        await closed_loop("warm-up", gateway, min(1000, args.commands), args.concurrency)
        await closed_loop("warm-up raw", raw_sender(exchange, "warm"), 500, args.concurrency)
        await purge(channel, stack.options.partitions)

        c = args.concurrency
        phases: list[tuple[str, Callable[[], Awaitable[Figures]]]] = [
            (
                "gateway",
                lambda: closed_loop(
                    f"gateway HTTP, concurrency {c}",
                    gateway_sender(session, stack.gateway_url, key, "gw"),
                    args.commands,
                    c,
                ),
            ),
            (
                "raw",
                lambda: closed_loop(
                    f"raw aio-pika, concurrency {c}",
                    raw_sender(exchange, "raw"),
                    args.commands,
                    c,
                ),
            ),
            (
                "gateway-rate",
                lambda: open_loop(
                    f"gateway HTTP at {args.rate:.0f}/s",
                    gateway_sender(session, stack.gateway_url, key, "gwr"),
                    args.rate,
                    args.seconds,
                ),
            ),
            (
                "raw-rate",
                lambda: open_loop(
                    f"raw aio-pika at {args.rate:.0f}/s",
                    raw_sender(exchange, "rawr"),
                    args.rate,
                    args.seconds,
                ),
            ),
        ]
        gateway_process = psutil.Process(stack.gateway.pid if stack.gateway else 0)
        gateway_cpu_us = 0.0
        for name, phase in phases:
            cpu_before = sum(gateway_process.cpu_times()[:2])
            wal_before = newest_wal(stack.broker.mnesia_dir)
            with no_collector_pauses():
                figures = await phase()
            figures.wal_rollovers = newest_wal(stack.broker.mnesia_dir) - wal_before
            if name == "gateway" and figures.ok:
                cpu = sum(gateway_process.cpu_times()[:2]) - cpu_before
                gateway_cpu_us = cpu / figures.ok * 1e6
            print(figures.line(), flush=True)
            results.append(figures)
            await purge(channel, stack.options.partitions)
    return results, gateway_cpu_us


WRK_SCRIPT = """
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
request = function()
  counter = counter + 1
  local body = '{"type":"ensure-user","user":"wrk' .. counter .. '"}'
  return wrk.format(nil, "/v1/commands", nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.errors.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def wrk_closed_loop(
    url: str, key: str, concurrency: int, seconds: float, state: Path, name: str = "gateway"
) -> Figures | None:
    """``wrk`` at ``concurrency`` connections for ``seconds``; None if wrk is missing.

    Non-2xx answers count as failed; wrk reports latency percentiles, not samples, so
    the figures carry p50, p99 and max as three latencies.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not installed: phase skipped (make bench installs it)")
        return None
    script = state / "commands.lua"
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(
        [wrk, "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s", "-s", str(script), url],
        env={**os.environ, "BENCH_KEY": key},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", done.stdout)
    if found is None:
        raise RuntimeError(f"unexpected wrk output: {done.stdout[-500:]}")
    requests, non2xx, p50_us, p99_us, max_us = (int(v) for v in found.groups())
    return ReportedFigures(
        f"{name} HTTP via wrk, {concurrency} conns",
        requests - non2xx,
        non2xx,
        seconds,
        [],
        reported={50: p50_us / 1000, 99: p99_us / 1000, 100: max_us / 1000},
    )


def floor_closed_loop(
    amqp_url: str, concurrency: int, seconds: float, state: Path
) -> tuple[Figures | None, float]:
    """``wrk`` against ``http_publish_floor.py`` (aiohttp + aio-pika publish, nothing
    else) on the same broker; the figures and that process's CPU µs per command."""
    floor = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("http_publish_floor.py")),
            "0",  # it binds a free port itself and says which: nothing can take it between
            amqp_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert floor.stdout is not None
        said = floor.stdout.readline().split()
        if len(said) != 2 or said[0] != "ready":
            raise RuntimeError("http_publish_floor.py did not start")
        port = int(said[1])
        process = psutil.Process(floor.pid)
        url = f"http://127.0.0.1:{port}"
        wrk_closed_loop(url, "-", concurrency, 2, state, "warm-up")  # connections, caches
        cpu_before = sum(process.cpu_times()[:2])
        figures = wrk_closed_loop(
            url, "-", concurrency, seconds, state, "floor (aiohttp + aio-pika)"
        )
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        return figures, (cpu / figures.ok * 1e6 if figures and figures.ok else 0.0)
    finally:
        floor.terminate()
        floor.wait(timeout=30)


def main() -> int:
    """Start the stack, run the phases, print figures and ratios, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--wrk-seconds", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as state:
        stack = LocalStack(
            Path(state),
            StackOptions(consumers=0, hub=False, hub_service=False, partitions=args.partitions),
        )
        stack.start()
        try:
            key = stack.issue_app_key("bench")
            phases, gateway_cpu_us = asyncio.run(run(stack, key, args))
            gateway, raw, gateway_rate, raw_rate = phases
            process = psutil.Process(stack.gateway.pid if stack.gateway else 0)
            cpu_before = sum(process.cpu_times()[:2])
            by_wrk = wrk_closed_loop(
                stack.gateway_url, key, args.concurrency, args.wrk_seconds, Path(state)
            )
            wrk_cpu_us = (
                (sum(process.cpu_times()[:2]) - cpu_before) / max(1, by_wrk.ok) * 1e6
                if by_wrk
                else 0.0
            )
            floor, floor_cpu_us = (
                floor_closed_loop(
                    stack.broker.amqp_url, args.concurrency, args.wrk_seconds, Path(state)
                )
                if by_wrk
                else (None, 0.0)
            )
        finally:
            stack.stop()
    ratio = gateway.rate / raw.rate if raw.rate else float("nan")
    print()
    if by_wrk is not None:
        print(by_wrk.line())
    if floor is not None:
        print(floor.line())
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    print(f"gateway CPU per accepted command (closed loop): {gateway_cpu_us:.0f} us")
    print(f"ratio gateway/raw at concurrency {args.concurrency}: {ratio:.2f}   (target >= 0.6)")
    if by_wrk is not None:
        print(
            f"ratio gateway (wrk)/raw: {by_wrk.rate / raw.rate if raw.rate else float('nan'):.2f}"
            f"   gateway CPU per command under wrk: {wrk_cpu_us:.0f} us"
        )
    if by_wrk is not None and floor is not None and raw.rate:
        print(
            f"floor (aiohttp + aio-pika publish only)/raw: {floor.rate / raw.rate:.2f}"
            f"   floor CPU per command: {floor_cpu_us:.0f} us"
            f"   gateway (wrk)/floor: {by_wrk.rate / floor.rate:.2f}"
        )
    print(
        f"at {args.rate:.0f}/s offered: gateway p99 {gateway_rate.percentile(99):.1f} ms "
        f"(achieved {gateway_rate.rate:.0f}/s), raw p99 {raw_rate.percentile(99):.1f} ms   "
        "(target <= 25 ms)"
    )
    print(
        f"broker WAL rollovers during the {args.rate:.0f}/s phases: gateway "
        f"{gateway_rate.wal_rollovers}, raw {raw_rate.wal_rollovers} (each stalls confirms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
