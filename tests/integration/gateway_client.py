"""Helpers of the gateway tests: calling the gateway, reading what it published, and
playing a consumer (commit a result, announce it on the bus)."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import aiohttp

from devstack.stack import LocalStack
from runtime.bus.publisher import ConfirmedPublisher
from runtime.db.commands import CommandStore
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import CommandStatus
from schemas.commands import CommandType
from schemas.events import CommandSucceeded, EventKind, make_event
from schemas.topology import HEADER_COMMAND_ID, Partitioning

AUTH_CACHE_SECONDS = 2.0
MAX_BODY_BYTES = 65_536
MAX_WAIT_SECONDS = 20


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for an app key."""
    return {"Authorization": f"Bearer {key}"}


async def post_command(
    gw: aiohttp.ClientSession, key: str, body: Any, **headers: str
) -> tuple[int, dict[str, Any], Any]:
    """POST a command body; (status, headers, JSON answer)."""
    async with gw.post("/v1/commands", json=body, headers={**bearer(key), **headers}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def bus_messages(stack: LocalStack, command_id: str) -> list[aio_pika.IncomingMessage]:
    """Every message for ``command_id`` now in the partition queues (all are drained).

    Nothing else consumes in this stack, so the count each queue reports is exact.
    (Single-active-consumer quorum queues refuse basic.get: consume instead.)
    """
    found: list[aio_pika.IncomingMessage] = []
    connection = await aio_pika.connect(stack.broker.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        for name in Partitioning(stack.options.partitions).queues():
            queue = await channel.declare_queue(name, passive=True)
            waiting = queue.declaration_result.message_count or 0
            if not waiting:
                continue
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    if (message.headers or {}).get(HEADER_COMMAND_ID) == command_id:
                        found.append(message)
                    waiting -= 1
                    if not waiting:
                        break
    return found


async def finish_like_a_consumer(
    stack: LocalStack, command: dict[str, Any], app: str, result: dict[str, Any]
) -> None:
    """Do what a consumer does when a command succeeds: commit it, then announce it."""
    engine = make_engine(stack.database_url)
    try:
        store = CommandStore(make_sessionmaker(engine))
        command_id = uuid.UUID(command["id"])
        await store.begin_attempt(command_id)
        await store.finish(command_id, CommandStatus.SUCCEEDED, result=result)
    finally:
        await engine.dispose()
    await announce_success(stack, command, app, result)


async def announce_success(
    stack: LocalStack, command: dict[str, Any], app: str, result: dict[str, Any]
) -> None:
    """Publish the ``command.succeeded`` event of ``command`` (a command view) for ``app``."""
    data = CommandSucceeded(
        command_id=uuid.UUID(command["id"]),
        command_type=CommandType(command["type"]),
        user=command["user"],
        result=result,
    )
    event = make_event(
        EventKind.COMMAND_SUCCEEDED,
        data,
        subject=command["id"],
        correlation_id=command["correlation_id"],
        app_id=app,
    )
    connection = await aio_pika.connect_robust(stack.broker.amqp_url)
    async with connection:
        publisher = ConfirmedPublisher(connection)
        await publisher.publish_event(EventKind.COMMAND_SUCCEEDED, event)
        await publisher.close()
