"""Declare the bus topology of :mod:`schemas.topology` (idempotent, at every start)."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from schemas import topology as t


async def declare_events_exchange(channel: AbstractChannel) -> AbstractExchange:
    """The topic exchange events are published to."""
    return await channel.declare_exchange(
        t.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_topology(channel: AbstractChannel, partitions: int) -> None:
    """Declare exchanges and queues for commands, retries, dead letters and events.

    Partition queues are quorum queues with single-active-consumer; their
    ``x-delivery-limit`` dead-letters a message that keeps crashing consumers.
    """
    dead = await channel.declare_exchange(
        t.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        t.DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead)

    commands = await channel.declare_exchange(
        t.COMMANDS_EXCHANGE, "x-consistent-hash", durable=True
    )
    for name in t.Partitioning(partitions).queues():
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-single-active-consumer": True,
                "x-delivery-limit": t.COMMAND_DELIVERY_LIMIT,
                "x-dead-letter-exchange": t.DEAD_LETTER_EXCHANGE,
            },
        )
        await queue.bind(commands, routing_key="1")

    for delay in t.RETRY_DELAYS_SECONDS:
        retry = await channel.declare_exchange(
            t.retry_exchange(delay), aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(
            t.retry_queue(delay),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": delay * 1000,
                "x-dead-letter-exchange": t.COMMANDS_EXCHANGE,
            },
        )
        await queue.bind(retry)

    await declare_events_exchange(channel)
