"""What one system account per workspace costs a first ``open``: the same stack with
and without per-user accounts, in one run.

For each mode: start the stack, then ``open`` a notebook for N new users one after
another (each a new workspace: account creation, where enabled, is on this path) and
report the latency of each ``open`` (median, max). Needs root.

    PYTHONPATH=. .venv/bin/python bench/spawn_accounts.py [--users 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from devstack.command_client import CommandClient
from devstack.stack import LocalStack, StackOptions


async def _opens(stack: LocalStack, users: int) -> list[float]:
    key = stack.issue_app_key("bench")
    seconds = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        app = CommandClient(http, stack.gateway_url, key)
        for _ in range(users):
            started = time.monotonic()
            await app.succeed(
                {"type": "open", "user": f"b{uuid.uuid4().hex[:8]}", "path": "a.ipynb"}
            )
            seconds.append(time.monotonic() - started)
    return seconds


def measure(user_accounts: bool, users: int) -> list[float]:
    """``open`` latencies (s) of ``users`` new users on a fresh stack."""
    with tempfile.TemporaryDirectory(prefix="bench-spawn-") as state:
        options = StackOptions(consumers=1, user_accounts=user_accounts)
        with LocalStack(Path(state), options) as stack:
            return asyncio.run(_opens(stack, users))


def main() -> None:
    """Measure both modes and print the figures and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5)
    args = parser.parse_args()
    shared = measure(False, args.users)
    accounts = measure(True, args.users)
    for name, figures in (("one account (baseline)", shared), ("account per workspace", accounts)):
        print(
            f"{name:24} open: median {statistics.median(figures):.2f} s, "
            f"max {max(figures):.2f} s  ({', '.join(f'{s:.2f}' for s in figures)})"
        )
    ratio = statistics.median(accounts) / statistics.median(shared)
    print(f"ratio (accounts / baseline, medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
