"""Publishing with publisher confirms, ``mandatory`` and returns turned into errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from pamqp.commands import Basic

from runtime.metrics import PUBLISH_CONFIRM_SECONDS, labelled
from runtime.outgoing import OutgoingMessage
from schemas.events import CloudEvent, EventKind, routing_key
from schemas.topology import EVENTS_EXCHANGE


class PublishFailed(Exception):
    """The broker did not confirm the message: nothing may be reported as accepted."""


class ConfirmedPublisher:
    """Publishes persistent messages and waits for the broker's confirm.

    A message is delivered to the broker when :meth:`publish` returns; on nack,
    unroutable return, timeout or a lost connection it raises :class:`PublishFailed`
    (at once while the connection is down and reconnecting). The publish-to-confirm
    time of confirmed messages is observed in ``orch_publish_confirm_seconds``.
    """

    def __init__(self, connection: AbstractRobustConnection, *, timeout: float = 5.0) -> None:
        self._connection = connection
        self._timeout = timeout
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """False while the connection is down and reconnecting: :meth:`publish` would
        raise at once. True does not promise a confirm (the broker may be frozen)."""
        return self._connection.connected.is_set()

    async def _ready_channel(self) -> aiormq.abc.AbstractChannel:
        channel = self._channel
        if channel is None or channel.is_closed:
            async with self._lock:
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                channel = self._channel
        return await channel.get_underlay_channel()

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        content_type: str = "application/json",
        type_: str | None = None,
    ) -> None:
        """Publish and wait for the confirm; raise PublishFailed if not confirmed."""
        # pamqp properties and the underlying aiormq channel (aio-pika's own publish
        # does exactly this) instead of an aio_pika.Message and Exchange.publish, and one
        # asyncio.timeout for the whole call instead of wait_for (a task per call): the
        # publish is most of the gateway's CPU per command.
        properties = Basic.Properties(
            headers=headers or {},
            message_id=message_id,
            correlation_id=correlation_id,
            content_type=content_type,
            message_type=type_,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
        )
        if not self.connected:
            raise PublishFailed("broker unavailable: not connected")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                channel = await self._ready_channel()
                confirmation = await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                )
        except aio_pika.exceptions.DeliveryError as exc:
            if isinstance(exc.frame, Basic.Nack):
                await self._discard_channel()
            raise PublishFailed(f"broker refused the message: {exc}") from exc
        except TimeoutError as exc:
            raise PublishFailed("broker did not confirm in time") from exc
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc
        if not isinstance(confirmation, Basic.Ack):
            raise PublishFailed(f"broker did not acknowledge: {confirmation!r}")
        labelled(PUBLISH_CONFIRM_SECONDS, exchange).observe(time.perf_counter() - started)

    async def _discard_channel(self) -> None:
        """Close the channel after a nack, so the next publish opens a fresh one.

        A quorum queue nacks what its channel published while the queue's leader was
        on a lost node; RabbitMQ (3.10) keeps nacking every later publish on that same
        channel even once a new leader is elected, while a new channel is accepted.
        """
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(aiormq.exceptions.AMQPError, RuntimeError, OSError):
                await channel.close()

    async def publish_event(self, kind: EventKind, event: CloudEvent[Any]) -> None:
        """Publish an event to the events exchange under its routing key."""
        await self.publish_message(event_message(kind, event))

    async def publish_message(self, message: OutgoingMessage) -> None:
        """Publish ``message`` (e.g. from the outbox) and wait for the confirm."""
        await self.publish(
            message.exchange,
            message.routing_key,
            message.body,
            headers=message.headers,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            type_=message.type_,
        )

    async def close(self) -> None:
        """Close the publishing channel (the connection belongs to the caller)."""
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()


def event_message(
    kind: EventKind, event: CloudEvent[Any], *, caused_by: uuid.UUID | None = None
) -> OutgoingMessage:
    """The message of ``event``: the events exchange, its routing key, CloudEvents JSON."""
    return OutgoingMessage(
        message_id=event.id,
        exchange=EVENTS_EXCHANGE,
        routing_key=routing_key(kind, event.data),
        body=event.model_dump_json().encode(),
        caused_by=caused_by,
        correlation_id=event.correlationid,
        content_type="application/cloudevents+json",
        type_=event.type,
    )
