"""Commands for one user are applied in acceptance order, with two consumer processes."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from consumers.notebook_codec import canonicalise
from devstack.command_client import CommandClient, JupyterFiles, notebook_with
from devstack.stack import LocalStack
from tests.conftest import TEST_APP

USERS = 5  # spread over 4 partitions, which the stack's two consumers share
COMMANDS_PER_USER = 6


async def _finished_commands(http: aiohttp.ClientSession, port: int) -> float:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("orch_commands_finished_total{")
    )


async def _one_user(app: CommandClient, files: JupyterFiles, user: str) -> None:
    # create then save, sent back to back: save fails (404) if it overtakes create
    create = await app.submit({"type": "create", "user": user, "path": "n.ipynb"})
    first_save = await app.submit({"type": "save", "user": user, "path": "n.ipynb"})
    assert (await app.wait(create))["status"] == "succeeded"
    assert (await app.wait(first_save))["status"] == "succeeded"

    await files.write(user, "n.ipynb", notebook_with("v1"))
    v1 = await app.succeed({"type": "save", "user": user, "path": "n.ipynb"})
    await files.write(user, "n.ipynb", notebook_with("v2"))
    await app.succeed({"type": "save", "user": user, "path": "n.ipynb"})

    # restore v1 then save, back to back: the save must see v1's content
    restore = await app.submit(
        {"type": "restore", "user": user, "path": "n.ipynb", "version_id": v1["version_id"]}
    )
    save = await app.submit({"type": "save", "user": user, "path": "n.ipynb"})
    restored, saved = await app.wait(restore), await app.wait(save)
    assert restored["status"] == saved["status"] == "succeeded", (restored, saved)
    assert saved["result"]["sha256"] == v1["sha256"] == canonicalise(notebook_with("v1")).sha256
    assert restored["finished_at"] <= saved["finished_at"]


async def test_two_commands_for_one_user_apply_in_acceptance_order(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    app = CommandClient(http, stack.gateway_url, app_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)
    ports = list(stack.consumer_metrics_ports.values())
    before = [await _finished_commands(http, port) for port in ports]
    users = [f"ord{uuid.uuid4().hex[:8]}" for _ in range(USERS)]
    await asyncio.gather(*(_one_user(app, files, user) for user in users))
    after = [await _finished_commands(http, port) for port in ports]
    assert len(ports) == 2
    assert sum(after) - sum(before) >= USERS * COMMANDS_PER_USER
