"""Consumers SIGKILLed in the middle of a spawn: after a restart the commands complete.

This module kills consumer processes, so it runs its own stack (no save extension, so
the only versions are those the commands store).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack.command_client import (
    CommandClient,
    JupyterFiles,
    cell_sources,
    notebook_with,
    versions_of,
)
from devstack.stack import LocalStack, StackOptions

SPAWN_PENDING_TIMEOUT = 60
CRASH_APP = "crash"


@pytest.fixture(scope="module")
def crashy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("crashy")
    stack = LocalStack(state, StackOptions(consumers=2, hub_service=False))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def _wait_spawn_pending(files: JupyterFiles, user: str) -> None:
    """Poll the Hub (it has no event for this) until ``user``'s spawn is pending."""
    deadline = time.monotonic() + SPAWN_PENDING_TIMEOUT
    while True:
        server = await files.server(user)
        if server is not None:
            if server.get("pending") == "spawn":
                return
            assert not server.get("ready"), "the spawn finished before the kill"
        assert time.monotonic() < deadline, "the spawn never became pending"
        await asyncio.sleep(0.05)


def _kill_all_consumers(stack: LocalStack) -> None:
    for consumer in stack.consumers:
        os.kill(consumer.pid, signal.SIGKILL)
    for consumer in stack.consumers:
        consumer.stop()  # reaps it; nothing else is left running


@pytest.mark.slow
async def test_consumers_killed_during_a_spawn_then_open_and_save_complete_once(
    crashy: LocalStack, http: aiohttp.ClientSession, username: str
) -> None:
    app = CommandClient(http, crashy.gateway_url, crashy.issue_app_key(CRASH_APP))
    files = JupyterFiles(http, crashy.hub.url, crashy.service_token, app=CRASH_APP)
    opened = await app.submit({"type": "open", "user": username, "path": "kept.ipynb"})
    saved = await app.submit({"type": "save", "user": username, "path": "kept.ipynb"})

    await _wait_spawn_pending(files, username)
    _kill_all_consumers(crashy)
    for index in range(len(crashy.consumers)):
        crashy.start_consumer(index, wait=False)
    for index in range(len(crashy.consumers)):
        crashy.wait_consumer_ready(index)

    open_view, save_view = await app.wait(opened), await app.wait(saved)
    assert open_view["status"] == "succeeded", open_view
    assert open_view["attempts"] >= 2, "the open was not interrupted"
    assert save_view["status"] == "succeeded", save_view
    assert cell_sources(await files.read(username, "kept.ipynb")) == []
    versions = await versions_of(crashy.database_url, username, "kept.ipynb", app=CRASH_APP)
    assert [str(v.id) for v in versions] == [save_view["result"]["version_id"]]

    await files.write(username, "kept.ipynb", notebook_with("after the crash"))
    again = await app.succeed({"type": "save", "user": username, "path": "kept.ipynb"})
    assert again["new_version"] is True
    kept = await versions_of(crashy.database_url, username, "kept.ipynb", app=CRASH_APP)
    assert len(kept) == 2
