"""Live events for apps: the bus listener and ``GET /v1/events`` (server-sent events).

One exclusive queue per gateway process is bound to every event; each event is
handed to the long-poll waiters and to the SSE streams of the app it belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from orchestrator.gateway.command_waiters import WAITERS
from orchestrator.gateway.context import AMQP, correlation_id, current_app
from orchestrator.gateway.middleware import CORRELATION_HEADER
from orchestrator.gateway.validation import invalid_parameter
from runtime.http_errors import ApiError
from schemas.events import EventKind
from schemas.names import check_username
from schemas.topology import EVENTS_EXCHANGE

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
STREAM_QUEUE_SIZE = 1000
KEEPALIVE_SECONDS = 15.0
EVENT_KINDS = frozenset(k.value for k in EventKind)


@dataclass(eq=False)
class Subscription:
    """One SSE client: its app, optional user filter and event kinds, and its queue."""

    app: str
    user: str | None
    kinds: frozenset[str] | None
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(STREAM_QUEUE_SIZE)
    )

    def wants(self, event: dict[str, Any]) -> bool:
        """True if this client should see ``event``."""
        data = event.get("data") or {}
        if event.get("appid") != self.app:
            return False  # another app's, or of a Hub user no app owns
        if self.user is not None and data.get("user") != self.user:
            return False
        kind = ".".join(str(event.get("type", "")).split(".")[-3:-1])
        return self.kinds is None or kind in self.kinds


class EventBroadcaster:
    """Fans bus events out to SSE subscriptions (slow clients drop events, not the bus)."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, sub: Subscription) -> None:
        """Start delivering to ``sub``."""
        self._subscriptions.add(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``."""
        self._subscriptions.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        """Offer ``event`` to every interested subscription."""
        for sub in list(self._subscriptions):
            if sub.wants(event):
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(event)


BROADCASTER = web.AppKey("broadcaster", EventBroadcaster)


async def _on_event(app: web.Application, message: AbstractIncomingMessage) -> None:
    async with message.process(ignore_processed=True):
        try:
            event = json.loads(message.body)
        except ValueError:
            return
        data = event.get("data") or {}
        command_id = data.get("command_id")
        if command_id:
            with contextlib.suppress(ValueError):
                app[WAITERS].notify(uuid.UUID(command_id))
        app[BROADCASTER].publish(event)


async def event_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: consume every event through a private auto-delete queue."""
    channel = await app[AMQP].channel()
    await channel.set_qos(prefetch_count=200)
    exchange = await channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="#")
    tag = await queue.consume(lambda m: _on_event(app, m))
    yield
    with contextlib.suppress(Exception):
        await queue.cancel(tag)
        await channel.close()


def parse_kinds(raw: str | None) -> frozenset[str] | None:
    """The ``?types=`` event kinds (None: all); 422 naming ``types`` for unknown kinds."""
    if raw is None:
        return None
    kinds = frozenset(t.strip() for t in raw.split(",") if t.strip())
    unknown = kinds - EVENT_KINDS
    if not kinds or unknown:
        raise invalid_parameter(
            "types", f"comma-separated event kinds, each one of: {', '.join(sorted(EVENT_KINDS))}"
        )
    return kinds


def _sse(event: dict[str, Any]) -> bytes:
    kind = ".".join(str(event.get("type", "")).split(".")[-3:-1]) or "message"
    return f"id: {event.get('id', '')}\nevent: {kind}\ndata: {json.dumps(event)}\n\n".encode()


@routes.get("/v1/events")
async def event_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events of the app (``?user=`` filters, ``?types=a,b`` picks kinds).

    Only the app's own events: its commands' results and what happens in its
    workspaces (saves, renames, deletes inside Jupyter carry the workspace's app).
    """
    app = current_app(request)
    user = request.query.get("user")
    if user is not None:
        try:
            check_username(user)
        except ValueError as exc:
            raise invalid_parameter("user", str(exc)) from None
        if not app.may_act_for(user):
            raise ApiError(403, "forbidden", f"app '{app.name}' may not watch user '{user}'")
    sub = Subscription(app=app.name, user=user, kinds=parse_kinds(request.query.get("types")))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            CORRELATION_HEADER: correlation_id(request),
        }
    )
    broadcaster = request.app[BROADCASTER]
    broadcaster.subscribe(sub)  # before "connected": nothing after it is missed
    try:
        await response.prepare(request)
        await response.write(b": connected\n\n")
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    event = await sub.queue.get()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            await response.write(_sse(event))
    except ConnectionResetError:
        pass
    finally:
        broadcaster.unsubscribe(sub)
    return response
