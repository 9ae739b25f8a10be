"""The distributed shape: a three-node RabbitMQ cluster, PostgreSQL, two gateways and
four consumers (each its own process, as if on separate hosts).

The partition queues are quorum queues with a member on every node. Under mixed load
(``ensure-user``, ``open`` and saves of changed notebooks, spread over both gateways) a
broker node is SIGKILLed and started again, then a consumer and a gateway are killed:
no accepted command is lost, no save makes two versions, no answer is a 5xx other than
503, and a subscriber of its own sees every version's ``notebook.saved``.

Scenario 2 (consumers SIGKILLed under load, quick) runs on the same stack: every
accepted command succeeds, every save makes exactly one version, no user is reported
created twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from devstack.broker_cluster import RabbitMQCluster
from devstack.reliability.harness import RunningStack, running_stack
from devstack.reliability.node_loss import cluster_options, node_loss_under_load
from devstack.reliability.process_faults import consumer_kills_under_load
from schemas.topology import Partitioning

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("cluster"), cluster_options()) as started:
        yield started


def _cluster(running: RunningStack) -> RabbitMQCluster:
    assert isinstance(running.stack.broker, RabbitMQCluster)
    return running.stack.broker


async def _queues(http: aiohttp.ClientSession, cluster: RabbitMQCluster, node: int) -> Any:
    base = cluster.nodes[node].management_url
    async with http.get(f"{base}/api/queues/%2F", headers=cluster.management_auth) as resp:
        assert resp.status == 200, await resp.text()
        return {q["name"]: q for q in await resp.json()}


async def test_partition_queues_have_a_member_on_every_node(
    running: RunningStack, http: aiohttp.ClientSession
) -> None:
    cluster = _cluster(running)
    names = sorted(node.node_name for node in cluster.nodes)
    assert await asyncio.to_thread(cluster.running_nodes) == names
    queues = await _queues(http, cluster, 1)
    for name in Partitioning(running.stack.options.partitions).queues():
        assert queues[name]["type"] == "quorum"
        assert sorted(queues[name]["members"]) == names, queues[name]


async def test_consumer_sigkill_under_load_loses_and_duplicates_nothing(
    running: RunningStack,
) -> None:
    result = await consumer_kills_under_load(
        running.stack, running.app_key, rate=15, kills=2, kill_every=3, save_users=2
    )
    print(result.render())
    assert result.problems == [], result.render()
    assert result.figures["saves sent"] > 0
    assert result.figures["versions made by saves"] == result.figures["saves sent"]


async def test_node_consumer_and_gateway_loss_lose_nothing(running: RunningStack) -> None:
    result = await node_loss_under_load(
        running.stack, running.app_key, rate=20, warm_up=6, node_down=6, settle=5
    )
    print(result.render())
    assert result.problems == [], result.render()
    figures = result.figures
    assert figures["5xx other than 503"] == 0
    assert figures["saves accepted"] > 0
    assert figures["versions made by saves"] > 0
