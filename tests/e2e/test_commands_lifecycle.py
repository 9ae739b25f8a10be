"""Every command through the real gateway, broker, consumers, Hub and single-user servers."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from consumers.notebook_codec import canonicalise
from devstack.command_client import (
    CommandClient,
    JupyterFiles,
    cell_sources,
    notebook_with,
    version_store,
    versions_of,
)
from devstack.stack import LocalStack
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP

SPAWN_TIMEOUT = 180


@pytest.fixture
async def app(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> AsyncIterator[CommandClient]:
    yield CommandClient(http, stack.gateway_url, app_key)


@pytest.fixture
def files(stack: LocalStack, http: aiohttp.ClientSession) -> JupyterFiles:
    return JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)


async def test_ensure_user_start_server_again_and_stop(
    app: CommandClient, files: JupyterFiles, username: str
) -> None:
    assert await app.succeed({"type": "ensure-user", "user": username}) == {
        "user": username,
        "created": True,
    }
    assert (await app.succeed({"type": "ensure-user", "user": username}))["created"] is False

    started = await app.succeed({"type": "start-server", "user": username}, SPAWN_TIMEOUT)
    assert started["server_url"].endswith(f"/user/{files.hub_user(username)}/")
    server = await files.server(username)
    assert server is not None and server["ready"] is True

    again = await app.run({"type": "start-server", "user": username})
    assert (again["status"], again["attempts"]) == ("succeeded", 1)
    assert again["result"]["server_url"] == started["server_url"]

    stopped = await app.succeed({"type": "stop-server", "user": username})
    assert stopped["was_running"] is True
    assert await files.server(username) is None
    assert (await app.succeed({"type": "stop-server", "user": username}))["was_running"] is False


async def test_create_at_nested_path_and_untitled_in_nested_folder(
    app: CommandClient, files: JupyterFiles, username: str
) -> None:
    created = await app.succeed(
        {"type": "create", "user": username, "path": "deep/er/first.ipynb"}, SPAWN_TIMEOUT
    )
    assert created == {"path": "deep/er/first.ipynb", "created": True}
    model = await files.read(username, "deep/er/first.ipynb")
    assert model is not None and model["type"] == "notebook"

    await files.write(username, "deep/er/first.ipynb", notebook_with("kept = True"))
    again = await app.succeed({"type": "create", "user": username, "path": "deep/er/first.ipynb"})
    assert again["created"] is False
    assert cell_sources(await files.read(username, "deep/er/first.ipynb")) == ["kept = True"]

    untitled = await app.succeed({"type": "create", "user": username, "folder": "new/nested"})
    assert untitled["path"].startswith("new/nested/Untitled")
    assert (await files.read(username, untitled["path"])) is not None


async def test_save_restore_and_open(
    stack: LocalStack, app: CommandClient, files: JupyterFiles, username: str
) -> None:
    path = "work/analysis.ipynb"
    opened = await app.succeed({"type": "open", "user": username, "path": path}, SPAWN_TIMEOUT)
    assert opened["restored_version_id"] is None
    assert opened["launch_url"]
    assert cell_sources(await files.read(username, path)) == []

    # The stack's save extension may store what Jupyter saved before the save command
    # runs; either way the command must end with exactly one version of that content.
    await files.write(username, path, notebook_with("x = 1"))
    v1 = await app.succeed({"type": "save", "user": username, "path": path})
    assert v1["sha256"] == canonicalise(notebook_with("x = 1")).sha256
    async with version_store(stack.database_url) as store:
        content = await store.content(v1["sha256"])
    assert content is not None and hashlib.sha256(content.encode()).hexdigest() == v1["sha256"]

    same = await app.succeed({"type": "save", "user": username, "path": path})
    assert (same["new_version"], same["version_id"]) == (False, v1["version_id"])

    await files.write(username, path, notebook_with("x = 2"))
    v2 = await app.succeed({"type": "save", "user": username, "path": path})
    assert v2["sha256"] == canonicalise(notebook_with("x = 2")).sha256
    stored = await versions_of(stack.database_url, username, path, app=TEST_APP)
    assert [v.sha256 for v in stored[:2]] == [v2["sha256"], v1["sha256"]]
    assert [str(v.id) for v in stored[:2]] == [v2["version_id"], v1["version_id"]]
    assert len({v.sha256 for v in stored}) == len(stored), "identical content stored twice"

    restored = await app.succeed(
        {"type": "restore", "user": username, "path": path, "version_id": v1["version_id"]}
    )
    assert restored["version_id"] == v1["version_id"]
    assert cell_sources(await files.read(username, path)) == ["x = 1"]

    await files.write(username, path, notebook_with("x = 2"))
    await app.succeed({"type": "save", "user": username, "path": path})
    await files.delete(username, path)
    latest = await app.succeed({"type": "restore", "user": username, "path": path})
    assert latest["sha256"] == v2["sha256"]
    async with version_store(stack.database_url) as store:
        newest = await store.latest(workspace_name(TEST_APP, username), path)
    assert newest is not None and str(newest.id) == latest["version_id"]
    assert cell_sources(await files.read(username, path)) == ["x = 2"]

    await files.delete(username, path)
    reopened = await app.succeed({"type": "open", "user": username, "path": path})
    assert reopened["restored_version_id"] == latest["version_id"]
    assert cell_sources(await files.read(username, path)) == ["x = 2"]

    await files.write(username, path, notebook_with("unsaved edit"))
    kept = await app.succeed({"type": "open", "user": username, "path": path})
    assert kept["restored_version_id"] is None
    assert cell_sources(await files.read(username, path)) == ["unsaved edit"]


async def test_restore_of_an_unknown_version_fails_at_once_and_says_why(
    app: CommandClient, files: JupyterFiles, username: str
) -> None:
    missing = str(uuid.uuid4())
    view = await app.run(
        {"type": "restore", "user": username, "path": "a.ipynb", "version_id": missing}
    )
    assert (view["status"], view["attempts"]) == ("failed", 1)
    assert view["error"]["code"] == "not_found"
    assert missing in view["error"]["message"]


async def test_save_of_a_missing_file_fails_with_not_found(
    app: CommandClient, username: str
) -> None:
    await app.succeed({"type": "start-server", "user": username}, SPAWN_TIMEOUT)
    view = await app.run({"type": "save", "user": username, "path": "nothing-here.ipynb"})
    assert (view["status"], view["attempts"]) == ("failed", 1)
    assert view["error"]["code"] == "not_found"
    assert "HTTP 404" in view["error"]["message"]
