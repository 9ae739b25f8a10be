"""Nothing accepted is lost: a consumer killed between the commit and the publish, and a
broker that comes back without its data.

The module kills its consumer and throws the broker's data away, so it runs its own
stack (no save extension: the only versions are those the commands store). The relay
runs with short bounds here (a command counts as lost after 2 s untouched) so the
scenarios take seconds, not the production minutes.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack.command_client import CommandClient, JupyterFiles, notebook_with, versions_of
from devstack.stack import LocalStack, StackOptions
from orchestrator.operator.subscribe import ReceivedEvent, subscribe_events
from runtime.db.engine import make_engine
from runtime.db.outbox import Outbox
from runtime.failpoints import KILLED_EXIT_STATUS

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
    (version,) = await versions_of(stack.database_url, user, path, app=OUTBOX_APP)
    assert saved.data["version_id"] == str(version.id)
    assert saved.event["correlationid"] == record["correlation_id"]
    assert saved.event["appid"] == OUTBOX_APP
    assert await _waiting_messages(stack) == 0


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
