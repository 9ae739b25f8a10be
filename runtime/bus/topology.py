"""Declare the bus topology of :mod:`schemas.topology` (idempotent, at every start)."""

from __future__ import annotations

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

from schemas import topology as t

log = structlog.get_logger(__name__)
# Quorum queues (RabbitMQ >= 3.10) dead-letter at least once with these: a message
# leaves its queue only once the dead-letter target confirmed it (at-most-once, the
# default, drops it if the target is unavailable). reject-publish is required for it.
AT_LEAST_ONCE_DEAD_LETTERING: FieldTable = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


async def _quorum_queue(
    channel: AbstractChannel, name: str, arguments: FieldTable
) -> AbstractQueue:
    """Declare a quorum queue that dead-letters at least once.

    A queue an older version declared with other arguments cannot be changed in
    place (RabbitMQ refuses the declaration): it is used as it is, and a warning says
    how to bring it up to date.
    """
    try:
        return await channel.declare_queue(
            name,
            durable=True,
            arguments={"x-queue-type": "quorum", **arguments, **AT_LEAST_ONCE_DEAD_LETTERING},
        )
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        log.warning(
            "queue exists with older arguments; used as it is (dead-lettering at most once "
            "until it is re-created empty, or a policy sets dead-letter-strategy)",
            queue=name,
            reason=str(exc)[:200],
        )
        await channel.reopen()
        return await channel.declare_queue(name, passive=True)


async def declare_events_exchange(channel: AbstractChannel) -> AbstractExchange:
    """The topic exchange events are published to."""
    return await channel.declare_exchange(
        t.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_topology(channel: AbstractChannel, partitions: int) -> None:
    """Declare exchanges and queues for commands, retries, dead letters and events.

    Partition queues are quorum queues with single-active-consumer; their
    ``x-delivery-limit`` dead-letters a message that keeps crashing consumers. Retry
    queues hold a message for their delay, then dead-letter it back to the commands
    exchange. Both dead-letter at least once (:data:`AT_LEAST_ONCE_DEAD_LETTERING`).
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
        queue = await _quorum_queue(
            channel,
            name,
            {
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
        queue = await _quorum_queue(
            channel,
            t.retry_queue(delay),
            {"x-message-ttl": delay * 1000, "x-dead-letter-exchange": t.COMMANDS_EXCHANGE},
        )
        await queue.bind(retry)

    await declare_events_exchange(channel)
