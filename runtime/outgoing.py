"""A message to publish, as both the bus publisher and the outbox table hold it.

Everything a publish needs is here, so a message stored in the outbox (in the same
transaction as the outcome that caused it) is later published byte for byte as it
would have been at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One persistent message: where it goes, its body and its AMQP properties.

    ``message_id`` is stable (an event id derived from its cause): publishing it twice
    gives subscribers the same id to de-duplicate. ``caused_by`` is the command or
    notification whose outcome produced it.
    """

    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    caused_by: uuid.UUID | None = None
    correlation_id: str | None = None
    content_type: str = "application/json"
    type_: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
