"""``orchestrator subscribe``: print live events; also the reference subscriber in code.

A subscription binds its own exclusive, server-named queue to the events exchange
with one routing-key pattern per chosen type (``notebook.saved`` →
``notebook.saved.#``, which also matches ``command.succeeded.<command type>`` for
command results). The queue lives as long as the connection: nothing is kept for a
subscriber that is not running. Services that must not miss events bind a durable
queue of their own instead (see docs/SUBSCRIBING.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from runtime.bus.connection import connect
from runtime.bus.topology import declare_events_exchange
from runtime.settings import CommonSettings
from schemas.events import EventKind

KNOWN_KINDS = tuple(kind.value for kind in EventKind)


def _related(name: str, kind: str) -> bool:
    """``name`` is ``kind``, a family of kinds (``notebook``) or one narrower than it."""
    return name == kind or kind.startswith(name + ".") or name.startswith(kind + ".")


def binding_keys(types: Sequence[str]) -> list[str]:
    """Topic patterns for ``types`` (all events when empty); ValueError for unknown types.

    A type may be a kind (``notebook.saved``), a family (``notebook``) or a narrower
    key (``command.failed.save``).
    """
    keys: list[str] = []
    for name in (t.strip() for t in types):
        if not name:
            continue
        if not any(_related(name, kind) for kind in KNOWN_KINDS):
            raise ValueError(f"unknown event type {name!r}; known: {', '.join(KNOWN_KINDS)}")
        keys.append(f"{name}.#")
    return keys or ["#"]


@dataclass(frozen=True)
class ReceivedEvent:
    """One event as a subscriber got it: routing key, the CloudEvent, arrival time."""

    routing_key: str
    event: dict[str, Any]
    received_monotonic: float

    @property
    def data(self) -> dict[str, Any]:
        """The event's ``data`` member."""
        data: dict[str, Any] = self.event.get("data") or {}
        return data


class EventSubscription:
    """Events of the bound types, in arrival order (an async iterator)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[ReceivedEvent] = asyncio.Queue()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Consumer callback: decode and queue (undecodable bodies are skipped)."""
        try:
            event = json.loads(message.body)
        except ValueError:
            return
        if isinstance(event, dict):
            self._queue.put_nowait(
                ReceivedEvent(message.routing_key or "", event, time.monotonic())
            )

    async def next(self) -> ReceivedEvent:
        """The next event (wrap in ``asyncio.timeout`` to bound the wait)."""
        return await self._queue.get()

    async def first(self, matches: Callable[[ReceivedEvent], bool]) -> ReceivedEvent:
        """The next event for which ``matches`` is true (earlier ones are consumed)."""
        while True:
            received = await self._queue.get()
            if matches(received):
                return received

    def __aiter__(self) -> AsyncIterator[ReceivedEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ReceivedEvent]:
        while True:
            yield await self._queue.get()


@contextlib.asynccontextmanager
async def subscribe_events(
    amqp_url: str, types: Sequence[str] = (), *, name: str = "subscriber"
) -> AsyncIterator[EventSubscription]:
    """Bind an exclusive queue for ``types`` and yield the subscription once bound."""
    connection = await connect(amqp_url, name=name)
    try:
        channel = await connection.channel()
        exchange = await declare_events_exchange(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in binding_keys(types):
            await queue.bind(exchange, routing_key=key)
        subscription = EventSubscription()
        await queue.consume(subscription.on_message, no_ack=True)
        yield subscription
    finally:
        await connection.close()


def describe(received: ReceivedEvent) -> str:
    """One human-readable line for an event."""
    event, data = received.event, received.data
    kind = ".".join(str(event.get("type", "")).split(".")[-3:-1])
    details = [f"{k}={data[k]}" for k in ("version_id", "origin", "size", "old_path") if k in data]
    if "sha256" in data:
        details.append(f"sha256={str(data['sha256'])[:12]}")
    if "error" in data:
        details.append(f"error={data['error'].get('code')}")
    return f"{event.get('time', '')}  {kind:<18} {event.get('subject', '')}  {' '.join(details)}"


async def run_subscribe(settings: CommonSettings, args: argparse.Namespace) -> int:
    """Print events until interrupted, ``--count`` events were printed, or ``--timeout``."""
    types = [t for t in (args.types or "").split(",") if t.strip()]
    try:
        binding_keys(types)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    printed = 0
    async with subscribe_events(settings.amqp_url.get_secret_value(), types) as events:
        print(f"# subscribed to {', '.join(binding_keys(types))}", flush=True)
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while args.count is None or printed < args.count:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout(remaining):
                    received = await events.next()
            except TimeoutError:
                break
            if args.user and received.data.get("user") != args.user:
                continue
            line = json.dumps(received.event) if args.json else describe(received)
            print(line, flush=True)
            printed += 1
    return 0
