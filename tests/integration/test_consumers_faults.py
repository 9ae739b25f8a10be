"""Consumers under a faulty Hub, poison messages and dead-letter replay.

The stack's consumers reach the real Hub only through a fault proxy, so the Hub can
be made to answer 503, 429 with Retry-After, drop connections or garble answers
for some requests or for a while; the stack is this module's own.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from devstack.command_client import CommandClient
from devstack.fault_proxy import FaultProxy, FaultRule
from devstack.stack import LocalStack, StackOptions
from schemas import topology as t
from schemas.workspaces import workspace_name

Faulty = tuple[LocalStack, FaultProxy]
FAULTS_APP = "faults"


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    state: Path = tmp_path_factory.mktemp("faulty")
    stack = LocalStack(state, StackOptions(consumers=2, hub_service=False))
    proxy = FaultProxy(stack.hub.url, stack.logs_dir / "fault-proxy.log")
    proxy.start()
    stack.options.hub_api_url_override = f"{proxy.url}/hub/api"
    stack.options.hub_public_url_override = proxy.url
    try:
        stack.start()
        yield stack, proxy
    finally:
        stack.stop()
        proxy.stop()


@pytest.fixture(scope="module")
def faults_key(faulty: Faulty) -> str:
    return faulty[0].issue_app_key(FAULTS_APP)


@pytest.fixture
async def app(
    faulty: Faulty, faults_key: str, http: aiohttp.ClientSession
) -> AsyncIterator[CommandClient]:
    """The app; every test starts with no faults and zeroed proxy counters."""
    stack, proxy = faulty
    proxy.clear()
    proxy.reset_stats()
    yield CommandClient(http, stack.gateway_url, faults_key)
    proxy.clear()


async def _metric(http: aiohttp.ClientSession, stack: LocalStack, name: str) -> float:
    """Sum of a counter over every consumer of the stack."""
    total = 0.0
    for port in stack.consumer_metrics_ports.values():
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith(name) and not line.startswith("#"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


def _user_path(user: str) -> str:
    """The Hub API path of ``user``'s workspace in the faults app."""
    return f"^/hub/api/users/{workspace_name(FAULTS_APP, user)}$"


async def test_hub_503_for_a_while_is_retried_until_the_command_succeeds(
    faulty: Faulty, app: CommandClient, http: aiohttp.ClientSession, username: str
) -> None:
    stack, proxy = faulty
    retries = await _metric(http, stack, "orch_hub_call_retries_total")
    proxy.set_rules(FaultRule("status", status=503, count=3, path_pattern=_user_path(username)))
    view = await app.run({"type": "ensure-user", "user": username})
    assert (view["status"], view["result"]) == ("succeeded", {"user": username, "created": True})
    assert proxy.stats()["faults"] == {"status": 3}
    assert await _metric(http, stack, "orch_hub_call_retries_total") - retries >= 3


async def _until(condition: Callable[[], bool], within: float = 30) -> None:
    """Return once ``condition()`` holds (checked every 50 ms); fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_stopped_consumers_finish_the_command_in_progress_first(
    faulty: Faulty, app: CommandClient, username: str
) -> None:
    """SIGTERM while a command waits on the Hub: each consumer stops taking messages,
    lets the command end and exits cleanly; the command is not cut and tried again."""
    stack, proxy = faulty
    proxy.set_rules(FaultRule("delay", delay_seconds=4, count=1, path_pattern=_user_path(username)))
    command_id = await app.submit({"type": "ensure-user", "user": username})
    await _until(lambda: proxy.stats()["faults"].get("delay") == 1)
    try:
        await asyncio.gather(*(asyncio.to_thread(c.stop, 30) for c in stack.consumers))
        exit_codes = [c.exit_code() for c in stack.consumers]
        view = await app.status(command_id)
    finally:
        for index in range(len(stack.consumers)):
            await asyncio.to_thread(stack.start_consumer, index)
    assert exit_codes == [0] * len(stack.consumers)
    assert (view["status"], view["attempts"], view["result"]) == (
        "succeeded",
        1,
        {"user": username, "created": True},
    )


async def test_hub_429_retry_after_is_waited_out(faulty: Faulty, app: CommandClient) -> None:
    user = f"r{uuid.uuid4().hex[:8]}"
    hub_user = workspace_name(FAULTS_APP, user)
    _, proxy = faulty
    proxy.set_rules(
        FaultRule(
            "status",
            status=429,
            retry_after=3,
            count=1,
            method="POST",
            path_pattern=f"^/hub/api/users/{hub_user}/server$",
        )
    )
    started = time.monotonic()
    view = await app.run({"type": "start-server", "user": user})
    assert view["status"] == "succeeded", view
    assert time.monotonic() - started >= 3.0
    stats = proxy.stats()
    assert stats["faults"] == {"status": 1}
    assert stats["requests"][f"POST /hub/api/users/{hub_user}/server"] == 2


async def test_dropped_connections_for_a_while_then_the_command_succeeds(
    faulty: Faulty, app: CommandClient
) -> None:
    user = f"d{uuid.uuid4().hex[:8]}"
    _, proxy = faulty
    hub_user = workspace_name(FAULTS_APP, user)
    proxy.set_rules(FaultRule("drop", seconds=4, path_pattern=f"^/(hub/api/users|user)/{hub_user}"))
    view = await app.run({"type": "open", "user": user, "path": "dropped.ipynb"})
    assert view["status"] == "succeeded", view
    assert proxy.stats()["faults"]["drop"] >= 1


async def test_a_permanent_hub_error_fails_at_once_and_says_why(
    faulty: Faulty, app: CommandClient, username: str
) -> None:
    _, proxy = faulty
    proxy.set_rules(FaultRule("status", status=403, path_pattern=_user_path(username)))
    view = await app.run({"type": "ensure-user", "user": username})
    assert (view["status"], view["attempts"]) == ("failed", 1)
    assert view["error"]["code"] == "hub_forbidden"
    assert "HTTP 403" in view["error"]["message"] and "scopes" in view["error"]["message"]
    hub_user = workspace_name(FAULTS_APP, username)
    assert proxy.stats()["requests"] == {f"POST /hub/api/users/{hub_user}": 1}


async def _publish_raw(amqp_url: str, queue: str, body: bytes) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue
        )


def _dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        stack.orchestrator_cli("dead-letters", "--json", "list")
    )
    return rows


async def test_poison_messages_are_dead_lettered_and_the_consumer_keeps_going(
    faulty: Faulty, app: CommandClient, username: str
) -> None:
    stack, _ = faulty
    undecodable = b"\xff\xfe not even text " + uuid.uuid4().bytes
    invalid = json.dumps({"id": str(uuid.uuid4()), "command": {"type": "explode"}}).encode()
    for partition in t.Partitioning(stack.options.partitions).queues():
        await _publish_raw(stack.broker.amqp_url, partition, undecodable)
    await _publish_raw(stack.broker.amqp_url, t.partition_queue(0), invalid)

    view = await app.run({"type": "ensure-user", "user": username})
    assert view["status"] == "succeeded"
    assert all(consumer.is_running() for consumer in stack.consumers)

    parked = [
        row for row in _dead_letters(stack) if "undecodable or schema-invalid" in row["reason"]
    ]
    assert len(parked) == stack.options.partitions + 1
    assert {row["routing_key"] for row in parked} == set(
        t.Partitioning(stack.options.partitions).queues()
    )
    shown = json.loads(stack.orchestrator_cli("dead-letters", "--json", "show", parked[-1]["id"]))
    assert shown[0]["headers"][t.HEADER_DEAD_REASON] == parked[-1]["reason"]
    stack.orchestrator_cli("dead-letters", "purge", *{row["id"] for row in parked})
    assert not [row for row in _dead_letters(stack) if row["id"] in {r["id"] for r in parked}]


async def test_a_crashed_command_is_dead_lettered_and_replay_performs_it(
    faulty: Faulty, app: CommandClient, username: str
) -> None:
    stack, proxy = faulty
    await app.succeed({"type": "ensure-user", "user": username})
    # the Hub's 200 for the user turns into HTML: the handler cannot go on
    proxy.set_rules(FaultRule("garble", count=1, method="GET", path_pattern=_user_path(username)))
    failed = await app.run({"type": "start-server", "user": username})
    assert (failed["status"], failed["error"]["code"]) == ("failed", "internal_error")
    parked = [row for row in _dead_letters(stack) if row["id"] == failed["id"]]
    assert len(parked) == 1 and "handler crashed" in parked[0]["reason"]

    replayed = json.loads(stack.orchestrator_cli("dead-letters", "--json", "replay", failed["id"]))
    assert replayed == [{"id": failed["id"], "replayed": True, "command_reopened": True}]
    done = await app.wait(failed["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["server_url"].endswith(f"/user/{workspace_name(FAULTS_APP, username)}/")
    assert not [row for row in _dead_letters(stack) if row["id"] == failed["id"]]
