"""The bus topology: every exchange, queue and routing key name, in one place.

Commands go to a consistent-hash exchange keyed by user, over N quorum partition
queues with single-active-consumer, so each user's commands are applied in order
while many consumer processes share the partitions. Failed attempts wait in one
retry queue per delay (queue-level TTL) and dead-letter back to the commands
exchange. Terminal failures and poison messages go to the dead-letter queue.
Events go to a topic exchange that subscribers bind their own queues to.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS_EXCHANGE = "orch.commands"
EVENTS_EXCHANGE = "orch.events"
DEAD_LETTER_EXCHANGE = "orch.dead"
DEAD_LETTER_QUEUE = "orch.dead-letters"
RETRY_DELAYS_SECONDS: tuple[int, ...] = (2, 10, 60)
DEFAULT_PARTITIONS = 4
COMMAND_DELIVERY_LIMIT = 20

# Message headers (AMQP application headers).
HEADER_CORRELATION_ID = "x-correlation-id"
HEADER_COMMAND_ID = "x-command-id"
HEADER_KIND = "x-orch-kind"
HEADER_ATTEMPT = "x-orch-attempt"
HEADER_DEAD_REASON = "x-orch-dead-reason"
HEADER_ROUTING_KEY = "x-orch-routing-key"

KIND_COMMAND = "command"
KIND_NOTIFICATION = "contents-notification"


def partition_queue(index: int) -> str:
    """Name of command partition queue ``index``."""
    return f"{COMMANDS_EXCHANGE}.p{index}"


def retry_exchange(delay_seconds: int) -> str:
    """Fanout exchange in front of the retry queue for ``delay_seconds``."""
    return f"orch.retry.{delay_seconds}s"


def retry_queue(delay_seconds: int) -> str:
    """Retry queue whose messages wait ``delay_seconds`` and then go back to commands."""
    return f"orch.retry.{delay_seconds}s"


def retry_delay_for(attempt: int) -> int | None:
    """Delay before retry number ``attempt`` (1-based) through the queues; None when spent."""
    if attempt < 1 or attempt > len(RETRY_DELAYS_SECONDS):
        return None
    return RETRY_DELAYS_SECONDS[attempt - 1]


@dataclass(frozen=True)
class Partitioning:
    """How many partition queues the commands exchange spreads users over."""

    partitions: int = DEFAULT_PARTITIONS

    def queues(self) -> list[str]:
        """All partition queue names."""
        return [partition_queue(i) for i in range(self.partitions)]
