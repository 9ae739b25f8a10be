"""The version history says what really happened, with the save extension reporting
every write made through Jupyter (the shared stack, real Hub and servers).

The orchestrator's own writes (create, restore) come back through the save extension
like any save; they must not be stored a second time as user edits. The exact history
with unsaved edits on disk is in ``test_durability.py`` (a stack without the save
extension, where what is on disk stays unsaved until a command reads it).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

from devstack.command_client import (
    CommandClient,
    JupyterFiles,
    cell_sources,
    notebook_with,
    versions_of,
)
from devstack.stack import LocalStack
from orchestrator.operator.subscribe import EventSubscription, ReceivedEvent, subscribe_events
from tests.conftest import TEST_APP

EVENT_TIMEOUT = 60.0


async def jupyter_saved(events: EventSubscription, user: str, marker: str) -> ReceivedEvent:
    """The ``notebook.saved`` of origin jupyter whose inline content holds ``marker``."""

    def matches(received: ReceivedEvent) -> bool:
        data = received.data
        return (
            data.get("user") == user
            and data.get("origin") == "jupyter"
            and marker in json.dumps(data.get("content"))
        )

    async with asyncio.timeout(EVENT_TIMEOUT):
        return await events.first(matches)


async def test_own_writes_reported_by_the_save_extension_are_not_stored_again(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    app = CommandClient(http, stack.gateway_url, app_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)
    user, path = f"h{uuid.uuid4().hex[:8]}", "history.ipynb"
    async with subscribe_events(stack.broker.amqp_url, ["notebook.saved"]) as events:
        await app.succeed({"type": "create", "user": user, "path": path})
        await files.write(user, path, notebook_with("edit one, saved in jupyter"))
        # the workspace's reports are handled in order: once a later save is stored,
        # the one reported for the orchestrator's write before it has been handled
        await jupyter_saved(events, user, "edit one")
        created = (await versions_of(stack.database_url, user, path, app=TEST_APP))[-1]
        assert created.origin == "create"
        restored = await app.succeed(
            {"type": "restore", "user": user, "path": path, "version_id": str(created.id)}
        )
        await files.write(user, path, notebook_with("edit two, saved in jupyter"))
        await jupyter_saved(events, user, "edit two")

    history = list(reversed(await versions_of(stack.database_url, user, path, app=TEST_APP)))
    assert [v.origin for v in history] == ["create", "jupyter", "restore", "jupyter"]
    assert [v.writing_command is None for v in history] == [False, True, False, True]
    create, _, restore, _ = history
    assert create.app == TEST_APP and restore.app == TEST_APP
    assert restore.restored_from == create.id and restore.sha256 == create.sha256
    assert restored["latest_version_id"] == str(restore.id)
    assert cell_sources(await files.read(user, path)) == ["edit two, saved in jupyter"]


async def app_json(
    http: aiohttp.ClientSession, stack: LocalStack, key: str, path: str
) -> dict[str, object]:
    """GET a gateway path as the tests' app (asserts 200)."""
    async with http.get(
        f"{stack.gateway_url}{path}", headers={"Authorization": f"Bearer {key}"}
    ) as response:
        assert response.status == 200, await response.text()
        body: dict[str, object] = await response.json()
        return body
