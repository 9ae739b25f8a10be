"""Every event type, as it arrives from the bus, parses with the official CloudEvents SDK
(``cloudevents.core.bindings.rabbitmq``, structured content mode) and keeps its
attributes, extensions and data.

The events are made by the real stack: commands through the gateway, and a save, a
rename and a delete inside Jupyter reported by the save extension.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aiohttp
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq_event
from cloudevents.core.v1.event import CloudEvent

from devstack.command_client import CommandClient, JupyterFiles, notebook_with
from devstack.stack import LocalStack
from runtime.bus.topology import declare_events_exchange
from schemas.events import EVENT_SOURCE, EventKind, event_type
from tests.conftest import TEST_APP

EVENT_TIMEOUT = 60.0


@asynccontextmanager
async def raw_events(amqp_url: str) -> AsyncIterator[asyncio.Queue[RabbitMQMessage]]:
    """Every event published while inside, as the SDK's RabbitMQ message (headers,
    content type, body exactly as delivered)."""
    received: asyncio.Queue[RabbitMQMessage] = asyncio.Queue()

    async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        headers = {k: str(v) for k, v in (message.headers or {}).items()}
        received.put_nowait(RabbitMQMessage(headers, message.content_type, message.body))

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await declare_events_exchange(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(keep, no_ack=True)
        yield received


async def until(
    received: asyncio.Queue[RabbitMQMessage],
    user: str,
    kind: EventKind,
    parsed: dict[str, tuple[CloudEvent, dict[str, Any]]],
) -> None:
    """Parse ``user``'s events as they come until one of ``kind`` was among them."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        while event_type(kind) not in parsed:
            message = await received.get()
            body = json.loads(message.body)
            if (body.get("data") or {}).get("user") == user:  # else another test's event
                event = from_rabbitmq_event(message)
                parsed.setdefault(event.get_type(), (event, body))


async def test_every_event_type_parses_with_the_cloudevents_sdk(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    app = CommandClient(http, stack.gateway_url, app_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)
    user = f"ce{uuid.uuid4().hex[:8]}"
    parsed: dict[str, tuple[CloudEvent, dict[str, Any]]] = {}
    async with raw_events(stack.broker.amqp_url) as received:
        await app.succeed({"type": "open", "user": user, "path": "a.ipynb"})
        await until(received, user, EventKind.COMMAND_SUCCEEDED, parsed)
        failed = await app.run(
            {"type": "restore", "user": user, "path": "a.ipynb", "version_id": str(uuid.uuid4())}
        )
        assert failed["status"] == "failed"
        await until(received, user, EventKind.COMMAND_FAILED, parsed)
        parsed.pop(event_type(EventKind.NOTEBOOK_SAVED), None)  # the open's: want Jupyter's
        await files.write(user, "a.ipynb", notebook_with("saved inside Jupyter"))
        await until(received, user, EventKind.NOTEBOOK_SAVED, parsed)
        await files.rename(user, "a.ipynb", "b.ipynb")
        await until(received, user, EventKind.NOTEBOOK_RENAMED, parsed)
        await files.delete(user, "b.ipynb")
        await until(received, user, EventKind.NOTEBOOK_DELETED, parsed)
        await app.succeed({"type": "stop-server", "user": user})
        await until(received, user, EventKind.SERVER_STOPPED, parsed)

    # A spawn the Hub fails, a cull and a move between Hubs are not made here:
    # test_consumer_hub_client, test_server_lifecycle and test_several_hubs observe (and
    # validate) those three.
    elsewhere = {
        EventKind.SERVER_SPAWN_FAILED,
        EventKind.SERVER_CULL_SCHEDULED,
        EventKind.USER_MOVED,
    }
    assert set(parsed) == {event_type(kind) for kind in EventKind if kind not in elsewhere}
    for type_, (event, body) in parsed.items():
        assert event.get_specversion() == "1.0"
        assert event.get_id() == body["id"] and event.get_source() == EVENT_SOURCE
        assert event.get_subject() == body["subject"]
        assert event.get_datacontenttype() == "application/json"
        assert event.get_time() is not None
        assert event.get_extension("appid") == TEST_APP, type_
        assert event.get_extension("correlationid") == body["correlationid"]
        data = event.get_data()
        assert isinstance(data, dict) and data == body["data"], type_
        assert data["user"] == user
