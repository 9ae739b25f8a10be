"""Nothing accepted is lost: a consumer killed between the commit and the publish, a
broker that comes back without its data, and a restore over unsaved edits.

The module kills its consumer and throws the broker's data away, so it runs its own
stack. It has no save extension: the only versions are those the commands store, and
a file changed on disk (as a kernel would) stays unsaved until a command reads it,
which makes the exact version history of a scenario predictable. The relay
runs with short bounds here (a command counts as lost after 2 s untouched) so the
scenarios take seconds, not the production minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
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
from orchestrator.operator.subscribe import ReceivedEvent, subscribe_events
from runtime.db.engine import make_engine
from runtime.db.outbox import Outbox
from runtime.failpoints import KILLED_EXIT_STATUS
from schemas.workspaces import workspace_name

pytestmark = pytest.mark.slow
OUTBOX_APP = "outbox"
RELAY_ENV = {
    "ORCH_RELAY_INTERVAL_SECONDS": "0.5",
    "ORCH_OUTBOX_GRACE_SECONDS": "1",
    "ORCH_STALE_ACCEPTED_SECONDS": "2",
}
EVENT_TIMEOUT = 60


@pytest.fixture(scope="module")
def outbox_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("outbox")
    options = StackOptions(
        consumers=1, hub_service=False, user_accounts=False, extra_env=dict(RELAY_ENV)
    )
    stack = LocalStack(state, options)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def outbox_key(outbox_stack: LocalStack) -> str:
    return outbox_stack.issue_app_key(OUTBOX_APP)


async def _waiting_messages(stack: LocalStack) -> int:
    engine = make_engine(stack.database_url)
    try:
        return await Outbox(engine).count()
    finally:
        await engine.dispose()


def _consumer_metric(stack: LocalStack, name: str) -> float:
    port = stack.consumer_metrics_ports[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def _saved(user: str, path: str) -> Callable[[ReceivedEvent], bool]:
    def matches(received: ReceivedEvent) -> bool:
        data = received.data
        is_saved = str(received.event.get("type", "")).endswith(".notebook.saved.v1")
        return is_saved and data.get("user") == user and data.get("path") == path

    return matches


async def test_a_save_whose_consumer_dies_after_the_commit_still_announces_its_version(
    outbox_stack: LocalStack, outbox_key: str, http: aiohttp.ClientSession
) -> None:
    stack = outbox_stack
    app = CommandClient(http, stack.gateway_url, outbox_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=OUTBOX_APP)
    user, path = "crash-saver", "kept.ipynb"
    await app.succeed({"type": "open", "user": user, "path": path})
    await files.write(user, path, notebook_with("print('saved before the crash')"))
    # the consumer dies as if SIGKILLed right after committing a save's outcome
    stack.consumers[0].stop()
    await asyncio.to_thread(
        stack.start_consumer, 0, extra_env={"ORCH_FAILPOINTS": "after-commit:save"}
    )
    async with subscribe_events(stack.broker.amqp_url, ["notebook.saved"]) as events:
        command_id = await app.submit({"type": "save", "user": user, "path": path})
        status = await asyncio.to_thread(stack.consumers[0].wait_exit, 120)
        assert status == KILLED_EXIT_STATUS
        record = await app.status(command_id)
        assert record["status"] == "succeeded"  # committed...
        assert await _waiting_messages(stack) == 2  # ...with its two events, unpublished
        await asyncio.to_thread(stack.start_consumer, 0)  # no failpoint
        async with asyncio.timeout(EVENT_TIMEOUT):
            saved = await events.first(_saved(user, path))
    version, _opened = await versions_of(stack.database_url, user, path, app=OUTBOX_APP)
    assert version.origin == "command"
    assert saved.data["version_id"] == str(version.id)
    assert saved.event["correlationid"] == record["correlation_id"]
    assert saved.event["appid"] == OUTBOX_APP
    # the rows go once every message of the batch is confirmed, after the event is out
    deadline = time.monotonic() + 10
    while (waiting := await _waiting_messages(stack)) > 0:
        assert time.monotonic() < deadline, f"{waiting} outbox messages still waiting"
        await asyncio.sleep(0.1)  # polling: nothing announces the deletion


async def test_commands_accepted_before_the_broker_lost_its_data_all_complete(
    outbox_stack: LocalStack, outbox_key: str, http: aiohttp.ClientSession
) -> None:
    stack = outbox_stack
    stack.consumers[0].stop()  # accepted commands stay queued
    app = CommandClient(http, stack.gateway_url, outbox_key)
    commands = [
        {"type": "ensure-user", "user": "lost-a"},
        {"type": "open", "user": "lost-a", "path": "a.ipynb"},
        {"type": "ensure-user", "user": "lost-b"},
        {"type": "create", "user": "lost-b", "path": "b.ipynb"},
        {"type": "save", "user": "lost-b", "path": "b.ipynb"},
    ]
    accepted = [await app.submit(command) for command in commands]
    # stop everything; the broker's data goes with it (stop deletes it), the DB stays
    await asyncio.to_thread(stack.stop)
    await asyncio.to_thread(stack.start)
    app = CommandClient(http, stack.gateway_url, outbox_key)
    later = await app.submit({"type": "open", "user": "lost-a", "path": "a.ipynb"})
    for command_id in [*accepted, later]:
        done = await app.wait(command_id, within=120)
        assert done["status"] == "succeeded", done
    assert _consumer_metric(stack, "orch_commands_republished_total") >= len(accepted)
    versions = await versions_of(stack.database_url, "lost-b", "b.ipynb", app=OUTBOX_APP)
    assert len(versions) == 1  # saved once, whatever the re-publishing


def write_on_disk(stack: LocalStack, user: str, path: str, source: str) -> None:
    """Change the file behind Jupyter's back (as a kernel would): nothing is reported."""
    target = stack.workspace_home(workspace_name(OUTBOX_APP, user)) / path
    target.write_text(json.dumps(notebook_with(source)))


async def test_the_history_of_create_save_restore_edit_is_what_happened(
    outbox_stack: LocalStack, outbox_key: str, http: aiohttp.ClientSession
) -> None:
    stack = outbox_stack
    app = CommandClient(http, stack.gateway_url, outbox_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=OUTBOX_APP)
    user, path = "historian", "history.ipynb"
    await app.succeed({"type": "create", "user": user, "path": path})
    write_on_disk(stack, user, path, "edit one")
    v1 = await app.succeed({"type": "save", "user": user, "path": path})
    write_on_disk(stack, user, path, "edit two, never saved")
    restoring = await app.run(
        {"type": "restore", "user": user, "path": path, "version_id": v1["version_id"]}
    )
    # at the first attempt: its two notebook.saved events (the kept edits, the restore)
    # are two outbox messages, not one id twice
    assert (restoring["status"], restoring["attempts"]) == ("succeeded", 1), restoring
    restored = restoring["result"]
    assert cell_sources(await files.read(user, path)) == ["edit one"]
    write_on_disk(stack, user, path, "edit three")
    await app.succeed({"type": "save", "user": user, "path": path})
    again = await app.succeed({"type": "save", "user": user, "path": path})
    assert again["new_version"] is False

    history = list(reversed(await versions_of(stack.database_url, user, path, app=OUTBOX_APP)))
    assert [(v.origin, v.before_overwrite) for v in history] == [
        ("create", False),
        ("command", False),
        ("jupyter", True),
        ("restore", False),
        ("command", False),
    ]
    create, saved, kept, restore, _ = history
    assert {create.app, saved.app, restore.app} == {OUTBOX_APP}
    assert str(saved.id) == v1["version_id"]
    assert kept.app is None and kept.command_id is None
    assert str(restore.restored_from) == v1["version_id"] and restore.sha256 == saved.sha256
    assert restored["latest_version_id"] == str(restore.id)
    assert len({v.sha256 for v in history}) == 4  # only the restore repeats content


async def test_a_restore_with_a_stale_if_version_fails_and_writes_nothing(
    outbox_stack: LocalStack, outbox_key: str, http: aiohttp.ClientSession
) -> None:
    stack = outbox_stack
    app = CommandClient(http, stack.gateway_url, outbox_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=OUTBOX_APP)
    user, path = "careful", "guarded.ipynb"
    await app.succeed({"type": "create", "user": user, "path": path})
    write_on_disk(stack, user, path, "first")
    first = await app.succeed({"type": "save", "user": user, "path": path})
    write_on_disk(stack, user, path, "second")
    await app.succeed({"type": "save", "user": user, "path": path})
    before = await versions_of(stack.database_url, user, path, app=OUTBOX_APP)
    refused = await app.run(
        {
            "type": "restore",
            "user": user,
            "path": path,
            "version_id": first["version_id"],
            "if_version": first["version_id"],
        }
    )
    assert refused["status"] == "failed" and refused["error"]["code"] == "conflict"
    assert cell_sources(await files.read(user, path)) == ["second"]
    assert await versions_of(stack.database_url, user, path, app=OUTBOX_APP) == before


async def _launch(url: str) -> int:
    """Follow a launch link as a fresh browser would (no cookies); the status it gets."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser,
        browser.get(url, allow_redirects=False) as response,
    ):
        return response.status


async def test_launch_links_stay_single_use_across_a_hub_restart(
    outbox_stack: LocalStack, outbox_key: str, http: aiohttp.ClientSession
) -> None:
    stack = outbox_stack
    app = CommandClient(http, stack.gateway_url, outbox_key)
    used = await app.succeed({"type": "open", "user": "relaunch", "path": "a.ipynb"})
    kept = await app.succeed({"type": "open", "user": "relaunch", "path": "a.ipynb"})
    assert await _launch(used["launch_url"]) == 302
    await asyncio.to_thread(stack.hub.restart)
    assert await _launch(used["launch_url"]) == 410  # still used after the restart
    assert await _launch(kept["launch_url"]) == 302  # issued before it, still good
    assert await _launch(kept["launch_url"]) == 410
