"""The topology on a real broker: quorum queues that dead-letter at least once, and a
broker whose queues an older version declared is used as it is."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest

from devstack.broker import RabbitMQBroker
from runtime.bus.topology import AT_LEAST_ONCE_DEAD_LETTERING, declare_topology
from schemas import topology as t

PARTITIONS = 2


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQBroker]:
    state: Path = tmp_path_factory.mktemp("topology")
    node = RabbitMQBroker(state)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def queue_arguments(broker: RabbitMQBroker, name: str) -> dict[str, Any]:
    """The arguments the broker holds for queue ``name`` (management API)."""
    url = f"{broker.management_url}/api/queues/{quote('/', safe='')}/{quote(name, safe='')}"
    request = urllib.request.Request(url, headers=broker.management_auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        arguments: dict[str, Any] = json.load(response)["arguments"]
        return arguments


async def test_command_and_retry_queues_dead_letter_at_least_once(
    broker: RabbitMQBroker,
) -> None:
    connection = await aio_pika.connect(broker.amqp_url)
    async with connection:
        await declare_topology(await connection.channel(), PARTITIONS)
    names = [*t.Partitioning(PARTITIONS).queues()]
    names += [t.retry_queue(delay) for delay in t.RETRY_DELAYS_SECONDS]
    for name in names:
        arguments = queue_arguments(broker, name)
        assert arguments["x-queue-type"] == "quorum", name
        for key, value in AT_LEAST_ONCE_DEAD_LETTERING.items():
            assert arguments[key] == value, (name, key)


async def test_queues_an_older_version_declared_are_used_as_they_are(
    broker: RabbitMQBroker,
) -> None:
    connection = await aio_pika.connect(broker.amqp_url)
    async with connection:
        channel = await connection.channel()
        old = t.Partitioning(PARTITIONS + 1).queues()[-1]  # one this module has not made
        await channel.queue_delete(old)
        older = {"x-queue-type": "quorum", "x-delivery-limit": t.COMMAND_DELIVERY_LIMIT}
        await channel.declare_queue(old, durable=True, arguments=older)
        await declare_topology(channel, PARTITIONS + 1)  # does not fail on the old one
        assert "x-dead-letter-strategy" not in queue_arguments(broker, old)
        exchange = await channel.get_exchange(t.COMMANDS_EXCHANGE)
        queue = await channel.get_queue(old)
        await queue.purge()
        for attempt in range(64):  # some routing key lands on the old partition
            await exchange.publish(aio_pika.Message(b"{}"), routing_key=f"user-{attempt}")
        message = await queue.get(timeout=5, fail=False)
        assert message is not None, "the old partition queue is still routed to"
        await queue.purge()
