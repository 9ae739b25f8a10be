"""The common shape of a ``bench/reliability`` script: own stack, one scenario, figures.

A script gives a coroutine running its scenario; this module parses ``--quick`` /
``--json FILE`` / ``--keep``, starts a :class:`LocalStack` in a temporary directory
(:func:`running_stack`, also used by the tests' fixtures), runs the scenario, stops
every process, prints the figures and exits 1 when a property did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.fault_proxy import FaultProxy
from devstack.reliability.hub_faults import hub_behind_fault_proxy
from devstack.reliability.load import RELIABILITY_APP
from devstack.reliability.result import ScenarioResult
from devstack.stack import LocalStack, StackOptions


def scenario_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every reliability script takes; scripts add their sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs)")
    return parser


def reliability_options() -> StackOptions:
    """The stack every scenario runs on: two consumers, four partitions, no hub service
    (saves come only from commands, so every version belongs to a command)."""
    return StackOptions(consumers=2, hub_service=False)


@dataclass(frozen=True)
class RunningStack:
    """A started stack, an unrestricted app key, and the fault proxy if one was asked for."""

    stack: LocalStack
    app_key: str
    proxy: FaultProxy | None


Scenario = Callable[[RunningStack, argparse.Namespace], Coroutine[Any, Any, ScenarioResult]]
"""A scenario as a script runs it: on a running stack, with the parsed arguments."""


@contextlib.contextmanager
def running_stack(
    state_dir: Path, options: StackOptions | None = None, *, fault_proxy: bool = False
) -> Iterator[RunningStack]:
    """Start a stack (consumers behind a fault proxy if asked) and stop all of it after."""
    stack = LocalStack(state_dir, options or reliability_options())
    with contextlib.ExitStack() as cleanup:
        proxy = cleanup.enter_context(hub_behind_fault_proxy(stack)) if fault_proxy else None
        try:
            stack.start()
            yield RunningStack(stack, stack.issue_app_key(RELIABILITY_APP), proxy)
        finally:
            stack.stop()


def run_scenario_script(
    parser: argparse.ArgumentParser,
    scenario: Scenario,
    *,
    fault_proxy: bool = False,
    options: StackOptions | None = None,
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv``, run ``scenario`` on a fresh stack (``options``, by default
    :func:`reliability_options`), print and return the exit code."""
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="orch-reliability-"))
    started = time.monotonic()
    try:
        with running_stack(state, options, fault_proxy=fault_proxy) as running:
            up = time.monotonic() - started
            print(f"stack up in {up:.1f} s (state: {state})", flush=True)
            result = asyncio.run(scenario(running, args))
    finally:
        if args.keep:
            print(f"state and logs kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    result.figures["scenario wall time (s)"] = round(time.monotonic() - started, 1)
    print(result.render(), flush=True)
    if args.json is not None:
        args.json.write_text(result.to_json())
    return 1 if result.problems else 0
