"""What the transactional outbox costs the gateway: this tree against the last commit
before it, same broker, same machine, same run.

Starts a private RabbitMQ (no Hub, no consumers) through LocalStack, checks the
``--before`` revision out into a temporary git worktree, and runs one gateway process
from each tree, each with its own fresh SQLite database. Then, alternating the two
(``--rounds`` times each, so drift hits both alike), an open loop at ``--rate``/s for
``--seconds`` of ``ensure-user`` POSTs: p50/p99 accept latency from each request's
scheduled start, and the gateway process's CPU time per accepted command. Prints the
figures and the ratios after/before. Partition queues are purged between phases.

    PYTHONPATH=. .venv/bin/python bench/outbox_cost.py [--before 4f83f89 --rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp
import psutil

from bench.gateway_throughput import Figures, gateway_sender, open_loop, purge
from devstack.ports import free_port, start_retrying_ports, wait_for_http
from devstack.process import REPOSITORY_ROOT, ManagedProcess
from devstack.stack import LocalStack, StackOptions

BEFORE_OUTBOX = "4f83f89"  # the last commit before the outbox


@dataclass
class Gateway:
    """One gateway process from one source tree."""

    name: str
    url: str
    key: str
    process: ManagedProcess


@contextmanager
def worktree(revision: str, into: Path) -> Iterator[Path]:
    """The repository at ``revision``, checked out under ``into`` (removed afterwards)."""
    path = into / f"tree-{revision}"
    subprocess.run(
        ["git", "-C", str(REPOSITORY_ROOT), "worktree", "add", "--detach", str(path), revision],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(REPOSITORY_ROOT), "worktree", "remove", "--force", str(path)],
            check=False,
            capture_output=True,
        )


def start_gateway(stack: LocalStack, name: str, tree: Path, state: Path) -> Gateway:
    """A gateway of ``tree`` on its own port and database, and an app key in that database.

    A port taken between choosing and binding it: started again on another.
    """
    started: list[Gateway] = []

    def choose_and_start() -> None:
        started.append(_start_gateway_once(stack, name, tree, state, free_port()))

    start_retrying_ports(choose_and_start, lambda: None)
    return started[-1]


def _start_gateway_once(
    stack: LocalStack, name: str, tree: Path, state: Path, port: int
) -> Gateway:
    instance = secrets.token_hex(8)
    env = {
        **stack.process_env(),
        "PYTHONPATH": str(tree),
        "ORCH_DATABASE_URL": f"sqlite+aiosqlite:///{state / f'{name}.db'}",
        "ORCH_GATEWAY_PORT": str(port),
        "ORCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ORCH_INSTANCE": instance,
    }
    argv = [sys.executable, "-m", "orchestrator"]
    created = subprocess.run(
        [*argv, "keys", "--json", "create", "bench"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(created.stdout)[0]["key"]
    process = ManagedProcess(
        f"gateway-{name}", [*argv, "gateway"], log_path=state / f"{name}.log", env=env, cwd=tree
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/readyz", 60, process=process, expect_status=200, proof=instance)
    except BaseException:
        process.stop()
        raise
    return Gateway(name, url, key, process)


@contextmanager
def gateways_before_and_after(
    state: Path, before: str, options: StackOptions
) -> Iterator[tuple[LocalStack, Gateway, Gateway]]:
    """A private stack (``options``: no gateway of its own needed) and two gateways on
    its broker: one of the ``before`` revision, one of this tree, each with its own
    SQLite database under ``state``. Everything is stopped afterwards."""
    stack = LocalStack(state / "stack", options)
    stack.start()
    gateways: list[Gateway] = []
    try:
        with worktree(before, state) as before_tree:
            gateways.append(start_gateway(stack, "before", before_tree, state))
            gateways.append(start_gateway(stack, "after", REPOSITORY_ROOT, state))
            yield stack, gateways[0], gateways[1]
    finally:
        for gateway in gateways:
            gateway.process.stop()
        stack.stop()


async def measure(
    gateway: Gateway, channel: aio_pika.abc.AbstractChannel, args: argparse.Namespace, run: str
) -> tuple[Figures, float]:
    """One open-loop phase against ``gateway``: figures and CPU µs per accepted command."""
    process = psutil.Process(gateway.process.pid)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        send = gateway_sender(session, gateway.url, gateway.key, run)
        await open_loop("warm-up", send, args.rate, 1.0)
        cpu_before = sum(process.cpu_times()[:2])
        figures = await open_loop(gateway.name, send, args.rate, args.seconds)
        cpu = sum(process.cpu_times()[:2]) - cpu_before
    await purge(channel, args.partitions)
    return figures, cpu / max(1, figures.ok) * 1e6


async def compare(
    gateways: list[Gateway], stack: LocalStack, args: argparse.Namespace
) -> dict[str, list[tuple[Figures, float]]]:
    """Alternate the gateways ``--rounds`` times; every phase's figures by gateway name."""
    results: dict[str, list[tuple[Figures, float]]] = {g.name: [] for g in gateways}
    connection = await aio_pika.connect(stack.broker.amqp_url)
    async with connection:
        channel = await connection.channel()
        for round_number in range(args.rounds):
            for gateway in gateways:
                run = f"{gateway.name}-{round_number}-{secrets.token_hex(3)}"
                results[gateway.name].append(await measure(gateway, channel, args, run))
    return results


def main() -> int:
    """Start broker and both gateways, measure, print figures and ratios, stop all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE_OUTBOX)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    options = StackOptions(consumers=0, hub=False, hub_service=False, partitions=args.partitions)
    with (
        tempfile.TemporaryDirectory(prefix="outbox-bench-") as temporary,
        gateways_before_and_after(Path(temporary), args.before, options) as (stack, *gateways),
    ):
        results = asyncio.run(compare(gateways, stack, args))

    summary: dict[str, tuple[float, float, float]] = {}
    for name, phases in results.items():
        for figures, cpu_us in phases:
            print(f"{figures.line()}   CPU {cpu_us:.0f} us/command")
        p50 = statistics.median(f.percentile(50) for f, _ in phases)
        p99 = statistics.median(f.percentile(99) for f, _ in phases)
        cpu = statistics.median(c for _, c in phases)
        summary[name] = (p50, p99, cpu)
        print(
            f"{name}: median of {len(phases)} rounds: p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, CPU {cpu:.0f} us/command"
        )
    (b50, b99, bcpu), (a50, a99, acpu) = summary["before"], summary["after"]
    print(
        f"after/before at {args.rate:.0f}/s: p50 {a50 / b50:.2f}, p99 {a99 / b99:.2f}, "
        f"CPU per command {acpu / bcpu:.2f}   (target: <= 1.15)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
