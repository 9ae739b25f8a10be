"""A three-node RabbitMQ cluster under the gateway: quorum queues on every node, and the
loss of the node the gateway was connected to costs no accepted command.

The gateway is given every node's URL; it publishes each command with confirms before
answering 202. Mid-load the first node (the one it connects to first) is SIGKILLed: the
gateway reconnects to another node, answers 503 meanwhile (the command was not
accepted) and 202 again afterwards; every command it accepted is then in the
partition queues, read through a surviving node.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from devstack.broker_cluster import RabbitMQCluster
from devstack.stack import LocalStack, StackOptions
from schemas.topology import Partitioning
from tests.integration.gateway_client import bearer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Three broker nodes and a gateway (no Hub, no consumers: commands stay queued)."""
    options = StackOptions(broker_nodes=3, hub=False, consumers=0, hub_service=False)
    stack = LocalStack(tmp_path_factory.mktemp("cluster"), options)
    stack.start(timeout=180)
    try:
        yield stack
    finally:
        stack.stop()


def _cluster(stack: LocalStack) -> RabbitMQCluster:
    assert isinstance(stack.broker, RabbitMQCluster)
    return stack.broker


async def _queues(http: aiohttp.ClientSession, cluster: RabbitMQCluster, node: int) -> Any:
    base = cluster.nodes[node].management_url
    async with http.get(f"{base}/api/queues/%2F", headers=cluster.management_auth) as resp:
        assert resp.status == 200, await resp.text()
        return {q["name"]: q for q in await resp.json()}


async def _queued(amqp_url: str, queues: list[str]) -> int:
    """Messages in ``queues`` now (passive declares: the queue's own count, no lag)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        total = 0
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
        return total


async def test_partition_queues_have_a_member_on_every_node(
    cluster_stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    cluster = _cluster(cluster_stack)
    names = sorted(node.node_name for node in cluster.nodes)
    assert await asyncio.to_thread(cluster.running_nodes) == names
    queues = await _queues(http, cluster, 1)
    for name in Partitioning(cluster_stack.options.partitions).queues():
        assert queues[name]["type"] == "quorum"
        assert sorted(queues[name]["members"]) == names, queues[name]


async def test_killing_the_gateways_node_loses_no_accepted_command(
    cluster_stack: LocalStack, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cluster = _cluster(cluster_stack)
    key = await asyncio.to_thread(cluster_stack.issue_app_key, f"cluster-{uuid.uuid4().hex[:6]}")
    partitions = Partitioning(cluster_stack.options.partitions).queues()
    queued_before = await _queued(cluster.nodes[1].amqp_url, partitions)
    statuses: list[int] = []
    accepted: list[str] = []
    killed_at: int | None = None
    stop, warmed, recovered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def send() -> None:
        n = 0
        async with aiohttp.ClientSession(base_url=cluster_stack.gateway_url) as gw:
            while not stop.is_set():
                n += 1
                body = {"type": "ensure-user", "user": f"c{n}-{uuid.uuid4().hex[:6]}"}
                async with gw.post("/v1/commands", json=body, headers=bearer(key)) as resp:
                    statuses.append(resp.status)
                    if resp.status == 202:
                        accepted.append((await resp.json())["id"])
                if len(accepted) >= 50:
                    warmed.set()  # steady load through the first node
                if killed_at is not None and statuses[killed_at:].count(202) >= 100:
                    recovered.set()  # accepted again, through another node

    sender = asyncio.create_task(send())
    try:
        async with asyncio.timeout(60):
            await warmed.wait()
        await asyncio.to_thread(cluster.kill_node, 0)
        killed_at = len(statuses)
        async with asyncio.timeout(90):
            await recovered.wait()
    finally:
        stop.set()
        await sender
    assert killed_at is not None
    after_kill = statuses[killed_at:]
    assert set(statuses) <= {202, 503}, sorted(set(statuses))  # no 5xx but 503
    assert after_kill.count(202) >= 100
    # every accepted command is queued, counted through a surviving node
    assert await _queued(cluster.nodes[1].amqp_url, partitions) - queued_before == len(accepted)
    await asyncio.to_thread(cluster.start_node, 0)
    await asyncio.to_thread(cluster.wait_until_all_running, 90)
