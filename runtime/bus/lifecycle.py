"""Opening the bus for a publishing process: connect, declare, confirmed publisher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aio_pika.abc import AbstractRobustConnection

from runtime.bus.connection import connect
from runtime.bus.publisher import ConfirmedPublisher
from runtime.bus.topology import declare_topology
from runtime.settings import CommonSettings


@contextlib.asynccontextmanager
async def confirmed_bus(
    settings: CommonSettings, *, name: str
) -> AsyncIterator[tuple[AbstractRobustConnection, ConfirmedPublisher]]:
    """A robust connection (named ``name`` in the broker) with the topology declared,
    and a publisher with confirms; both closed on exit."""
    connection = await connect(settings.amqp_url.get_secret_value(), name=name)
    try:
        async with connection.channel() as channel:
            await declare_topology(channel, settings.partitions)
        publisher = ConfirmedPublisher(connection, timeout=settings.publish_timeout_seconds)
        try:
            yield connection, publisher
        finally:
            await publisher.close()
    finally:
        await connection.close()
