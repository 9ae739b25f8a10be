"""Connecting to the broker: a robust connection that survives broker restarts and, given
several nodes of a cluster, the loss of the node it was connected to.

``ORCH_AMQP_URL`` may name several nodes, separated by commas
(``amqp://u:p@h1:5672/,amqp://u:p@h2:5672/``): each connection attempt takes the next
node in turn, so a connection whose node died reconnects to a live one. aio-pika then
restores channels, exchanges, queues and consumers there (quorum queues are declared
again with the same arguments, which changes nothing; a process's exclusive reply or
event queue is made again on the new node).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import FieldTable
from yarl import URL

log = structlog.get_logger(__name__)


def broker_urls(setting: str) -> list[str]:
    """The node URLs of an ``ORCH_AMQP_URL`` setting (one URL, or several separated by
    commas); ValueError when it names none."""
    urls = [part.strip() for part in setting.split(",") if part.strip()]
    if not urls:
        raise ValueError("no broker URL given")
    return urls


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over the nodes of a cluster, taking them in turn.

    aio-pika reads ``url`` exactly once per connection attempt; here that read returns
    the next node, so every reconnect tries another node than the one that failed.
    """

    def __init__(self, urls: Sequence[str], *, first: int = 0, **kwargs: Any) -> None:
        self._nodes = [URL(u) for u in urls]
        self._turn = first
        self._current = self._nodes[first % len(self._nodes)]
        self._ready = False  # aio-pika's __init__ sets and reads ``url`` once: ignored
        super().__init__(self._current, **kwargs)
        self._turn = first
        self._ready = True

    @property
    def url(self) -> URL:
        """The node to try now (each read moves on to the next one)."""
        self._current = self._nodes[self._turn % len(self._nodes)]
        self._turn += 1
        return self._current

    @url.setter
    def url(self, value: URL) -> None:
        """Set by aio-pika at construction (ignored) and when the secret is updated:
        the new password then holds for every node."""
        if not getattr(self, "_ready", False):
            return
        password = URL(value).password
        self._nodes = [node.with_password(password) for node in self._nodes]
        self._current = self._current.with_password(password)

    def __str__(self) -> str:
        """The node in use, without its password (logged by aio-pika)."""
        current = self._current
        return str(current.with_password("******") if current.password else current)


async def connect(url: str, *, name: str, attempts: int = 30) -> AbstractRobustConnection:
    """Open a robust connection, retrying at start-up while the broker comes up.

    ``url`` is one node's URL or several, separated by commas (see the module
    docstring); start-up attempts go round the nodes too. After the first success
    aio-pika reconnects by itself and restores channels, queues and consumers.
    """
    urls = broker_urls(url)
    properties: FieldTable = {"connection_name": name}
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            if len(urls) == 1:
                return await aio_pika.connect_robust(
                    urls[0], client_properties=properties, reconnect_interval=1
                )
            connection = FailoverConnection(
                urls, first=attempt - 1, client_properties=properties, reconnect_interval=1
            )
            await connection.connect()
            return connection
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            if attempt == attempts:
                raise
            log.warning("broker not reachable yet", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(delay if len(urls) == 1 else min(delay, 0.5))
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")
