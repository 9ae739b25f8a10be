"""What happens to each message, with an in-memory message double and fake publisher.

The contract under test: a command is acked only after its outcome and its events are
committed (the outbox), and its events are published after that commit; events the
broker does not confirm stay in the outbox for the relay; a transient failure goes
through the retry ladder (one delay per round), then to the dead-letter queue with
the reason; a permanent one fails at once; poison messages and unknown kinds are
parked; a database or bus failure before the commit gives the message back to its
queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers.errors import NotFoundError, PermanentError, TransientError
from consumers.event_publisher import EventPublisher, PendingEvent
from consumers.handlers import Handler, Outcome, Ports
from consumers.notifications import NotificationProcessor
from consumers.processor import CommandProcessor
from consumers.redelivery import Redelivery, attempt_of
from consumers.relay import OutboxDelivery, Relay, RelayPolicy
from consumers.router import MessageRouter
from consumers.user_locks import UserLocks
from runtime.bus.publisher import PublishFailed, event_message
from runtime.db.models import CommandStatus
from runtime.outgoing import OutgoingMessage
from schemas import topology as t
from schemas.commands import CommandMessage, CommandType
from schemas.events import CloudEvent, EventKind, NotebookSaved, SaveOrigin, event_type
from schemas.workspaces import Workspace, workspace_name


@dataclass
class Journal:
    """What happened, in order, across the fakes (commit, publish, ack...)."""

    steps: list[str] = field(default_factory=list)


@dataclass
class FakeMessage:
    """An in-memory stand-in for aio-pika's incoming message."""

    body: bytes
    journal: Journal
    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str | None = "alice"
    message_id: str | None = "m-1"
    correlation_id: str | None = "corr-1"
    content_type: str | None = "application/json"
    type: str | None = None
    redelivered: bool | None = False
    acked: bool = False
    nacked_requeue: bool | None = None

    async def ack(self) -> None:
        assert not self.acked and self.nacked_requeue is None, "settled twice"
        self.acked = True
        self.journal.steps.append("ack")

    async def nack(self, *, requeue: bool = True) -> None:
        assert not self.acked and self.nacked_requeue is None, "settled twice"
        self.nacked_requeue = requeue
        self.journal.steps.append("nack")


@dataclass
class Published:
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]


@dataclass
class FakePublisher:
    """Records every confirmed publish; ``fail`` makes the next publishes unconfirmed."""

    journal: Journal
    messages: list[Published] = field(default_factory=list)
    events: list[CloudEvent[Any]] = field(default_factory=list)
    fail: bool = False

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
        if self.fail:
            raise PublishFailed("broker did not confirm in time")
        self.messages.append(Published(exchange, routing_key, body, dict(headers or {})))
        self.journal.steps.append(f"publish {exchange}")

    async def publish_event(self, kind: EventKind, event: CloudEvent[Any]) -> None:
        await self.publish_message(event_message(kind, event))

    async def publish_message(self, message: OutgoingMessage) -> None:
        if message.exchange != t.EVENTS_EXCHANGE:
            await self.publish(message.exchange, message.routing_key, message.body)
            return
        if self.fail:
            raise PublishFailed("broker did not confirm in time")
        event = CloudEvent[Any].model_validate_json(message.body)
        self.events.append(event)
        kind = next(k for k in EventKind if event_type(k) == event.type)
        self.journal.steps.append(f"event {kind}")

    def parked(self) -> list[Published]:
        return [m for m in self.messages if m.exchange == t.DEAD_LETTER_EXCHANGE]


@dataclass
class Record:
    id: uuid.UUID
    user: str
    status: str = CommandStatus.ACCEPTED.value
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeCommandLog:
    """The command log in memory; ``broken`` makes ``finish`` fail like a lost database."""

    journal: Journal
    records: dict[uuid.UUID, Record] = field(default_factory=dict)
    broken: bool = False

    async def begin_attempt(self, command_id: uuid.UUID) -> Record | None:
        record = self.records.get(command_id)
        if record is not None and not CommandStatus(record.status).is_final:
            record.status = CommandStatus.RUNNING.value
        return record

    async def earlier_unfinished(self, record: Record) -> Record | None:
        for other in self.records.values():
            unfinished = not CommandStatus(other.status).is_final
            if other.user == record.user and other.created_at < record.created_at and unfinished:
                return other
        return None

    async def requeued(self, command_id: uuid.UUID) -> None:
        self.records[command_id].status = CommandStatus.ACCEPTED.value

    outbox: FakeOutbox = field(default_factory=lambda: FakeOutbox())

    async def finish(
        self,
        command_id: uuid.UUID,
        status: CommandStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        outbox: Sequence[OutgoingMessage] = (),
    ) -> None:
        if self.broken:
            raise ConnectionError("database unavailable")
        record = self.records[command_id]
        record.status, record.result, record.error = status.value, result, error
        self.outbox.messages.extend(outbox)
        self.journal.steps.append(f"commit {status.value}")

    async def claim_stale(
        self, *, accepted_for: timedelta, running_for: timedelta, limit: int, max_attempts: int
    ) -> list[Record]:
        return []

    async def waiting(self, older_than: timedelta) -> tuple[int, datetime | None]:
        cutoff = datetime.now(UTC) - older_than
        waiting = [
            r.updated_at
            for r in self.records.values()
            if r.status == CommandStatus.ACCEPTED.value and r.updated_at < cutoff
        ]
        return len(waiting), min(waiting, default=None)


@dataclass
class FakeOutbox:
    """The outbox table in memory."""

    messages: list[OutgoingMessage] = field(default_factory=list)

    async def of_cause(self, caused_by: uuid.UUID) -> list[OutgoingMessage]:
        return [m for m in self.messages if m.caused_by == caused_by]

    async def claim_stale(self, older_than: timedelta, limit: int) -> list[OutgoingMessage]:
        return self.messages[:limit]

    async def remove(self, message_ids: Sequence[str]) -> None:
        self.messages = [m for m in self.messages if m.message_id not in message_ids]


class FakeWorkspaces:
    """The workspace registry in memory, naming workspaces as the real one does."""

    def __init__(self) -> None:
        self.known: dict[str, Workspace] = {}

    async def ensure(self, app: str, user: str) -> Workspace:
        workspace = Workspace(workspace_name(app, user), app, user)
        self.known[workspace.name] = workspace
        return workspace

    async def owner(self, name: str) -> Workspace | None:
        return self.known.get(name)


def saved(user: str) -> PendingEvent:
    data = NotebookSaved(
        user=user,
        path="a.ipynb",
        version_id=uuid.uuid4(),
        sha256="0" * 64,
        size=10,
        origin=SaveOrigin.COMMAND,
        saved_at=datetime.now(UTC),
    )
    return PendingEvent(EventKind.NOTEBOOK_SAVED, data, subject=f"{user}/a.ipynb")


class Rig:
    """A command processor wired to the fakes, with one scripted handler for ``save``."""

    def __init__(self, behaviour: Handler) -> None:
        self.journal = Journal()
        self.publisher = FakePublisher(self.journal)
        self.log = FakeCommandLog(self.journal)
        redelivery = Redelivery(self.publisher)
        self.processor = CommandProcessor(
            Ports(hub=None, contents=None, versions=None, hub_public_url="http://hub"),  # type: ignore[arg-type]
            self.log,
            FakeWorkspaces(),
            EventPublisher(self.publisher),
            redelivery,
            UserLocks(),
            self.log.outbox,
            OutboxDelivery(self.publisher, self.log.outbox),
            handlers={CommandType.SAVE: behaviour},
            requeue_pause_seconds=0,
        )
        self.router = MessageRouter({t.KIND_COMMAND: self.processor}, redelivery)

    def command(self, user: str = "alice", *, attempt: int = 0) -> FakeMessage:
        message = CommandMessage.model_validate(
            {
                "id": str(uuid.uuid4()),
                "app": "app-x",
                "correlation_id": "corr-1",
                "accepted_at": datetime.now(UTC).isoformat(),
                "command": {"type": "save", "user": user, "path": "a.ipynb"},
            }
        )
        self.log.records[message.id] = Record(message.id, user)
        headers = {t.HEADER_ATTEMPT: attempt} if attempt else {}
        return FakeMessage(message.model_dump_json().encode(), self.journal, headers=headers)

    def record(self, incoming: FakeMessage) -> Record:
        return self.log.records[uuid.UUID(json.loads(incoming.body)["id"])]


async def succeeds(_cmd: Any, _ports: Ports, _id: uuid.UUID) -> Outcome:
    return Outcome({"path": "a.ipynb"}, [saved("alice")])


async def flaky(_cmd: Any, _ports: Ports, _id: uuid.UUID) -> Outcome:
    raise TransientError("Hub answered 503")


async def refused(_cmd: Any, _ports: Ports, _id: uuid.UUID) -> Outcome:
    raise NotFoundError("no stored version of a.ipynb")


async def crashes(_cmd: Any, _ports: Ports, _id: uuid.UUID) -> Outcome:
    raise KeyError("bug")


async def test_success_is_committed_then_its_events_published_then_acked() -> None:
    rig = Rig(succeeds)
    incoming = rig.command()
    await rig.router.handle(incoming)
    assert rig.journal.steps == [
        "commit succeeded",
        "event notebook.saved",
        "event command.succeeded",
        "ack",
    ]
    assert rig.record(incoming).result == {"path": "a.ipynb"}
    assert [e.appid for e in rig.publisher.events] == ["app-x", "app-x"]
    assert {e.correlationid for e in rig.publisher.events} == {"corr-1"}


async def test_events_of_a_message_handled_twice_keep_their_ids() -> None:
    rig = Rig(succeeds)
    incoming = rig.command()
    await rig.router.handle(incoming)
    first = [e.id for e in rig.publisher.events]
    rig.record(incoming).status = CommandStatus.RUNNING.value  # as if the ack was lost
    await rig.router.handle(FakeMessage(incoming.body, rig.journal))
    again = [e.id for e in rig.publisher.events[2:]]
    assert first[1] == again[1]  # command.succeeded
    assert len(set(first)) == 2


async def test_a_final_command_redelivered_publishes_what_its_outcome_left_and_is_acked() -> None:
    rig = Rig(succeeds)
    incoming = rig.command()
    rig.publisher.fail = True  # committed, then the broker went away before the events
    await rig.router.handle(incoming)
    assert incoming.acked and len(rig.log.outbox.messages) == 2
    rig.processor._handlers = {CommandType.SAVE: crashes}  # must not run again
    rig.publisher.fail = False
    await rig.router.handle(FakeMessage(incoming.body, rig.journal))
    assert rig.journal.steps[-3:] == ["event notebook.saved", "event command.succeeded", "ack"]
    assert rig.log.outbox.messages == []


async def test_a_final_command_redelivered_with_nothing_left_is_just_acked() -> None:
    rig = Rig(crashes)  # the handler must not run again
    incoming = rig.command()
    rig.record(incoming).status = CommandStatus.SUCCEEDED.value
    rig.record(incoming).result = {"path": "a.ipynb"}
    await rig.router.handle(incoming)
    assert rig.journal.steps == ["ack"]


@pytest.mark.parametrize("attempt", range(len(t.RETRY_DELAYS_SECONDS)))
async def test_a_transient_failure_goes_to_the_retry_queue_of_the_next_delay(
    attempt: int,
) -> None:
    rig = Rig(flaky)
    incoming = rig.command(attempt=attempt)
    await rig.router.handle(incoming)
    (retried,) = rig.publisher.messages
    assert retried.exchange == t.retry_exchange(t.RETRY_DELAYS_SECONDS[attempt])
    assert retried.headers[t.HEADER_ATTEMPT] == attempt + 1
    assert retried.body == incoming.body
    assert rig.journal.steps[-1] == "ack"
    assert rig.record(incoming).status == CommandStatus.ACCEPTED.value
    assert rig.publisher.events == []  # no command.failed yet


async def test_after_the_last_delay_it_gives_up_dead_letters_and_fails_the_command() -> None:
    rig = Rig(flaky)
    incoming = rig.command(attempt=len(t.RETRY_DELAYS_SECONDS))
    await rig.router.handle(incoming)
    (parked,) = rig.publisher.parked()
    reason = parked.headers[t.HEADER_DEAD_REASON]
    assert reason.startswith(f"gave up after {len(t.RETRY_DELAYS_SECONDS) + 1} rounds")
    assert "Hub answered 503" in reason
    assert parked.headers[t.HEADER_ROUTING_KEY] == "alice"
    record = rig.record(incoming)
    assert record.status == CommandStatus.FAILED.value
    assert record.error == {"code": "retries_exhausted", "message": reason}
    assert [e.type for e in rig.publisher.events] == [event_type(EventKind.COMMAND_FAILED)]
    assert rig.journal.steps[-1] == "ack"


async def test_a_permanent_failure_fails_at_once_without_retry_or_dead_letter() -> None:
    rig = Rig(refused)
    incoming = rig.command()
    await rig.router.handle(incoming)
    assert rig.publisher.messages == []
    assert rig.record(incoming).error == {
        "code": "not_found",
        "message": "no stored version of a.ipynb",
    }
    assert rig.journal.steps == ["commit failed", "event command.failed", "ack"]


async def test_a_crashing_handler_parks_the_message_and_fails_the_command() -> None:
    rig = Rig(crashes)
    incoming = rig.command()
    await rig.router.handle(incoming)
    (parked,) = rig.publisher.parked()
    assert "handler crashed: KeyError" in parked.headers[t.HEADER_DEAD_REASON]
    assert rig.record(incoming).error == {
        "code": "internal_error",
        "message": "internal error: KeyError",
    }
    assert incoming.acked


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", json.dumps({"id": "x", "command": {"type": "nope"}}).encode()]
)
async def test_poison_messages_are_parked_with_the_reason_and_acked(body: bytes) -> None:
    rig = Rig(succeeds)
    incoming = FakeMessage(body, rig.journal)
    await rig.router.handle(incoming)
    (parked,) = rig.publisher.parked()
    assert parked.body == body
    assert "undecodable or schema-invalid command message" in parked.headers[t.HEADER_DEAD_REASON]
    assert rig.journal.steps == [f"publish {t.DEAD_LETTER_EXCHANGE}", "ack"]


async def test_an_unknown_message_kind_is_parked() -> None:
    rig = Rig(succeeds)
    incoming = FakeMessage(b"{}", rig.journal, headers={t.HEADER_KIND: "telegram"})
    await rig.router.handle(incoming)
    (parked,) = rig.publisher.parked()
    assert parked.headers[t.HEADER_DEAD_REASON] == "no handler for message kind 'telegram'"
    assert incoming.acked


async def test_a_database_failure_before_the_commit_gives_the_message_back() -> None:
    rig = Rig(succeeds)
    rig.log.broken = True
    incoming = rig.command()
    await rig.router.handle(incoming)
    assert incoming.nacked_requeue is True
    assert not incoming.acked
    assert rig.publisher.events == []


async def test_unconfirmed_events_stay_in_the_outbox_and_the_relay_publishes_them() -> None:
    rig = Rig(succeeds)
    rig.publisher.fail = True
    incoming = rig.command()
    await rig.router.handle(incoming)
    assert incoming.acked  # the outcome and its events are durable
    assert rig.record(incoming).status == CommandStatus.SUCCEEDED.value
    left = [m.type_ for m in rig.log.outbox.messages]
    assert left == [event_type(EventKind.NOTEBOOK_SAVED), event_type(EventKind.COMMAND_SUCCEEDED)]
    rig.publisher.fail = False
    policy = RelayPolicy(
        interval=timedelta(seconds=1),
        outbox_grace=timedelta(0),
        stale_accepted=timedelta(minutes=2),
        stale_running=timedelta(minutes=5),
        max_attempts=25,
    )
    relay = Relay(policy, rig.log.outbox, rig.log, rig.publisher)
    assert await relay.run_once() == (2, 0)
    assert [e.type for e in rig.publisher.events] == left
    assert rig.log.outbox.messages == []


async def test_a_command_waits_behind_an_earlier_unfinished_one_of_the_same_user() -> None:
    rig = Rig(succeeds)
    earlier = rig.command()
    later = rig.command()
    rig.record(earlier).created_at -= timedelta(seconds=5)
    await rig.router.handle(later)
    (deferred,) = rig.publisher.messages
    assert deferred.exchange == t.retry_exchange(t.RETRY_DELAYS_SECONDS[0])
    assert deferred.headers.get(t.HEADER_ATTEMPT, 0) == 0  # deferral is not a failed round
    assert rig.record(later).status == CommandStatus.ACCEPTED.value
    assert later.acked


def test_the_attempt_header_is_read_defensively() -> None:
    journal = Journal()
    for value, expected in ((2, 2), ("2", 0), (True, 0), (None, 0)):
        assert attempt_of(FakeMessage(b"", journal, headers={t.HEADER_ATTEMPT: value})) == expected


class FlakyReader:
    async def exists(self, user: str, path: str) -> bool:
        return True

    async def read_notebook(self, user: str, path: str) -> dict[str, Any]:
        raise TransientError("contents API timed out")


def notification(journal: Journal, *, attempt: int) -> FakeMessage:
    body = {
        "notification": {
            "id": str(uuid.uuid4()),
            "user": "alice",
            "action": "save",
            "path": "a.ipynb",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    }
    return FakeMessage(
        json.dumps(body).encode(),
        journal,
        headers={t.HEADER_KIND: t.KIND_NOTIFICATION, t.HEADER_ATTEMPT: attempt},
    )


def notification_router(journal: Journal) -> tuple[MessageRouter, FakePublisher]:
    """A router with only the notification processor, reading through a flaky server."""
    publisher = FakePublisher(journal)
    redelivery = Redelivery(publisher)
    processor = NotificationProcessor(
        FlakyReader(),
        None,  # type: ignore[arg-type]  # never reached: every read fails first
        FakeWorkspaces(),
        EventPublisher(publisher),
        redelivery,
        UserLocks(),
    )
    return MessageRouter({t.KIND_NOTIFICATION: processor}, redelivery), publisher


@pytest.mark.parametrize("attempt", [0, len(t.RETRY_DELAYS_SECONDS)])
async def test_notifications_share_the_retry_ladder_and_the_dead_letter_queue(
    attempt: int,
) -> None:
    journal = Journal()
    router, publisher = notification_router(journal)
    incoming = notification(journal, attempt=attempt)
    await router.handle(incoming)
    (sent,) = publisher.messages
    if attempt < len(t.RETRY_DELAYS_SECONDS):
        assert sent.exchange == t.retry_exchange(t.RETRY_DELAYS_SECONDS[attempt])
    else:
        assert sent.exchange == t.DEAD_LETTER_EXCHANGE
        assert "contents API timed out" in sent.headers[t.HEADER_DEAD_REASON]
    assert incoming.acked


async def test_a_poison_notification_is_parked() -> None:
    journal = Journal()
    router, publisher = notification_router(journal)
    incoming = FakeMessage(b"[1]", journal, headers={t.HEADER_KIND: t.KIND_NOTIFICATION})
    await router.handle(incoming)
    (parked,) = publisher.parked()
    assert parked.headers[t.HEADER_DEAD_REASON].startswith("invalid notification")
    assert incoming.acked


def test_permanent_errors_carry_stable_codes() -> None:
    assert PermanentError("x").code == "permanent"
    assert NotFoundError("x").code == "not_found"


async def test_the_relay_reports_commands_left_waiting() -> None:
    rig = Rig(succeeds)
    incoming = rig.command()
    rig.record(incoming).updated_at -= timedelta(minutes=5)
    rig.command()  # just accepted: not waiting long
    policy = RelayPolicy(
        interval=timedelta(seconds=1),
        outbox_grace=timedelta(0),
        stale_accepted=timedelta(hours=1),
        stale_running=timedelta(hours=1),
        max_attempts=25,
        waiting_report=timedelta(seconds=90),
    )
    await Relay(policy, rig.log.outbox, rig.log, rig.publisher).run_once()
    assert REGISTRY.get_sample_value("orch_commands_waiting") == 1
    oldest = REGISTRY.get_sample_value("orch_oldest_waiting_command_seconds")
    assert oldest is not None and 300 <= oldest < 360
