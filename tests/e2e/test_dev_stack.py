"""`make run` as a newcomer and an operator meet it: two started in the same second both
work on ports they hold, a killed consumer is reported and replaced, and the operator
CLI works with nothing but `orchestrator env`'s output.

Runs `python -m devstack` (what `make run` runs) twice, each with its own state folder,
and reads their terminals. Both are ended with SIGINT, as Ctrl-C would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import pytest

from devstack.process import REPOSITORY_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
START_TIMEOUT = 300.0
LINE_TIMEOUT = 120.0


@dataclass
class DevStack:
    """One `python -m devstack` and what its terminal said."""

    process: asyncio.subprocess.Process
    state: Path
    lines: list[str] = field(default_factory=list)

    async def until(self, pattern: str, within: float = LINE_TIMEOUT) -> re.Match[str]:
        """Read the terminal until a line matches ``pattern``; fail if it ends first."""
        compiled = re.compile(pattern)
        for line in self.lines:
            if found := compiled.search(line):
                return found
        assert self.process.stdout is not None
        async with asyncio.timeout(within):
            while raw := await self.process.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if found := compiled.search(line):
                    return found
        raise AssertionError(f"ended before {pattern!r}:\n" + "\n".join(self.lines[-40:]))

    @property
    def banner(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    def value(self, pattern: str) -> str:
        """The first group of ``pattern`` in the banner."""
        found = re.search(pattern, self.banner)
        assert found, f"{pattern!r} not in the banner:\n{self.banner}"
        return found.group(1)


@pytest.fixture
async def two_stacks(tmp_path: Path) -> AsyncIterator[list[DevStack]]:
    """Two dev stacks started at the same moment; SIGINT and wait at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    stacks = []
    for name in ("a", "b"):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devstack",
            "--state-dir",
            str(tmp_path / name),
            cwd=REPOSITORY_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        stacks.append(DevStack(process, tmp_path / name))
    try:
        yield stacks
    finally:
        for stack in stacks:
            if stack.process.returncode is None:
                stack.process.send_signal(signal.SIGINT)
        for stack in stacks:
            async with asyncio.timeout(180):
                assert stack.process.stdout is not None
                await stack.process.stdout.read()  # drain, so that it can exit
                await stack.process.wait()


def _consumer_index(cmdline: list[str]) -> str | None:
    """The ``--index`` of an ``orchestrator consumer`` command line, else None."""
    if "consumer" not in cmdline or "--index" not in cmdline:
        return None
    return cmdline[cmdline.index("--index") + 1]


async def _status(http: aiohttp.ClientSession, gateway: str, key: str) -> int:
    async with http.post(
        f"{gateway}/v1/commands",
        json={"type": "ensure-user", "user": f"twin{uuid.uuid4().hex[:6]}"},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        return response.status


async def test_two_dev_stacks_a_killed_consumer_and_the_cli_from_env(
    two_stacks: list[DevStack], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await asyncio.gather(*(s.until("ORCH_KEY=", START_TIMEOUT) for s in two_stacks))
    gateways = [s.value(r"Gateway API\s+(\S+)") for s in two_stacks]
    hubs = [s.value(r"JupyterHub\s+(\S+)") for s in two_stacks]
    demos = [s.value(r"Demo app\s+(\S+)") for s in two_stacks]
    keys = [s.value(r"ORCH_KEY=(\S+)") for s in two_stacks]
    for urls in (gateways, hubs, demos):
        assert len(set(urls)) == 2, urls  # each on ports of its own
    for mine, other in ((0, 1), (1, 0)):
        assert await _status(http, gateways[mine], keys[mine]) == 202
        assert await _status(http, gateways[other], keys[mine]) == 401  # not the other's
        async with http.get(demos[mine]) as page:  # each demo answers on its own port
            assert page.status == 200

    # a consumer killed: reported in the terminal, and replaced
    first = two_stacks[0]
    (victim,) = [
        child
        for child in psutil.Process(first.process.pid).children(recursive=True)
        if _consumer_index(child.cmdline()) == "0"
    ]
    victim.kill()  # a process this test's dev stack started, by PID
    await first.until(r"!! consumer-0 exited \(status -9\); restarting it \(1/3\)")
    await first.until(r"consumer-0 is running again")
    assert await _status(http, gateways[0], keys[0]) == 202

    # the operator CLI, anywhere, with nothing but `orchestrator env`'s output
    env_file = first.state / "orchestrator.env"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    cli = str(Path(sys.executable).parent / "orchestrator")
    script = f'eval "$({cli} env --file {env_file})" && {cli} queues --json'
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=tmp_path,
        env=clean,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await shell.communicate()
    assert shell.returncode == 0, err.decode()
    rows = {row["queue"]: row for row in json.loads(out)}
    assert rows["orch.commands.p0"]["active_consumers"] == 1

    # the demo app culls idle servers quickly, to be seen in action
    script = f'eval "$({cli} env --file {env_file})" && {cli} servers --json policy demo'
    shell = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=tmp_path, env=clean, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await shell.communicate()
    assert shell.returncode == 0
    (policy,) = json.loads(out)
    assert (policy["idle_timeout_seconds"], policy["cull_grace_seconds"]) == (120, 30)
