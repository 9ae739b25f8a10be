"""Connecting to the broker: a robust connection that survives broker restarts."""

from __future__ import annotations

import asyncio

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustConnection

log = structlog.get_logger(__name__)


async def connect(url: str, *, name: str, attempts: int = 30) -> AbstractRobustConnection:
    """Open a robust connection, retrying at start-up while the broker comes up.

    After the first success aio-pika reconnects by itself and restores channels,
    queues and consumers.
    """
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return await aio_pika.connect_robust(
                url, client_properties={"connection_name": name}, reconnect_interval=1
            )
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            if attempt == attempts:
                raise
            log.warning("broker not reachable yet", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")
