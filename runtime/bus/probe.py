"""Does the broker answer right now? An active round trip, for readiness endpoints.

A connection stays "connected" for up to a heartbeat interval after the broker stops
answering (a frozen or partitioned node), so readiness cannot rely on the connection
state alone: it asks the broker something (a passive declare of the commands
exchange) and waits a bounded time for the answer.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from schemas.topology import COMMANDS_EXCHANGE

PROBE_TIMEOUT_SECONDS = 2.0
PROBE_CACHE_SECONDS = 1.0


class BrokerProbe:
    """Answers whether the broker completed a round trip within ``timeout`` seconds.

    Results are reused for ``cache_seconds`` so frequent readiness polls cost at most
    one round trip per interval; concurrent callers share one probe.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        cache_seconds: float = PROBE_CACHE_SECONDS,
    ) -> None:
        self._connection = connection
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._channel: AbstractChannel | None = None
        self._checked_at = -float("inf")
        self._answer: str | None = None
        self._lock = asyncio.Lock()

    async def problem(self) -> str | None:
        """None when the broker answered, else why not (``down``, ``not answering``)."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._cache_seconds:
                self._answer = await self._round_trip()
                self._checked_at = time.monotonic()
            return self._answer

    async def _round_trip(self) -> str | None:
        if self._connection.is_closed or not self._connection.connected.is_set():
            return "down"
        try:
            async with asyncio.timeout(self._timeout):
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._connection.channel(publisher_confirms=False)
                # aio-pika's declare_exchange answers from its own cache once declared;
                # the underlying channel's RPC always asks the broker.
                underlay = await self._channel.get_underlay_channel()
                await underlay.exchange_declare(exchange=COMMANDS_EXCHANGE, passive=True)
        except TimeoutError:
            self._channel = None  # a late answer must not be mistaken for the next one
            return f"not answering within {self._timeout:g} s"
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            self._channel = None
            return f"down: {type(exc).__name__}"
        return None
