"""What happens to a message that was not handled for good: retry later or park it.

One component for both processors (commands and contents notifications): it counts
attempts (the ``x-orch-attempt`` header), picks the delay of the next round from the
retry-queue ladder (``schemas.topology.RETRY_DELAYS_SECONDS``), gives up after the
last one, parks messages in the dead-letter queue with the reason and where they
came from, and keeps the retry and dead-letter metrics.
"""

from __future__ import annotations

import structlog

from consumers.ports import BusPublisher, InboundMessage
from runtime.metrics import COMMAND_RETRIES, DEAD_LETTERS
from schemas import topology as t

log = structlog.get_logger(__name__)
REASON_MAX_CHARS = 1000


def attempt_of(incoming: InboundMessage) -> int:
    """How many retry rounds ``incoming`` has been through (0 on first delivery)."""
    value = (incoming.headers or {}).get(t.HEADER_ATTEMPT, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Redelivery:
    """Sends messages through the retry queues and into the dead-letter queue.

    Every method publishes a copy with confirms and returns once it is durable; the
    caller acks the original afterwards (a failed publish raises ``PublishFailed``
    and the original must be given back instead).
    """

    def __init__(self, publisher: BusPublisher) -> None:
        self._publisher = publisher

    async def retry_or_give_up(
        self, incoming: InboundMessage, reason: str, *, label: str
    ) -> str | None:
        """Send ``incoming`` through the next retry round and return None, or, after the
        last round, dead-letter it (``retries_exhausted``) and return why it gave up.

        ``label`` names what is retried (a command type, ``notification``) in metrics.
        """
        attempt = attempt_of(incoming) + 1
        delay = t.retry_delay_for(attempt)
        if delay is None:
            gave_up = f"gave up after {attempt} rounds of retries: {reason}"
            await self.dead_letter(incoming, "retries_exhausted", gave_up)
            return gave_up
        log.warning("transient failure, retrying later", delay=delay, error=reason)
        await self.retry_later(incoming, delay, attempt=attempt)
        COMMAND_RETRIES.labels(label).inc()
        return None

    async def retry_later(self, incoming: InboundMessage, delay: int, *, attempt: int) -> None:
        """Send a copy through the retry queue of ``delay`` seconds (it comes back then)
        with ``attempt`` recorded."""
        headers = dict(incoming.headers or {})
        headers[t.HEADER_ATTEMPT] = attempt
        await self._publish_copy(incoming, t.retry_exchange(delay), headers, "application/json")

    async def dead_letter(self, incoming: InboundMessage, kind: str, reason: str) -> None:
        """Park a copy in the dead-letter queue with ``reason`` and its routing key;
        ``kind`` (e.g. ``poison``, ``retries_exhausted``) labels the metric."""
        log.warning("message dead-lettered", kind=kind, reason=reason)
        headers = dict(incoming.headers or {})
        headers[t.HEADER_DEAD_REASON] = reason[:REASON_MAX_CHARS]
        headers[t.HEADER_ROUTING_KEY] = incoming.routing_key or ""
        await self._publish_copy(
            incoming, t.DEAD_LETTER_EXCHANGE, headers, "application/octet-stream"
        )
        DEAD_LETTERS.labels(kind).inc()

    async def _publish_copy(
        self,
        incoming: InboundMessage,
        exchange: str,
        headers: dict[str, object],
        default_content_type: str,
    ) -> None:
        await self._publisher.publish(
            exchange,
            incoming.routing_key or "",
            incoming.body,
            headers=headers,
            message_id=incoming.message_id,
            correlation_id=incoming.correlation_id,
            content_type=incoming.content_type or default_content_type,
            type_=incoming.type,
        )
