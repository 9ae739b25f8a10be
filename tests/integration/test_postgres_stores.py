"""The stores behave the same on SQLite and on a real PostgreSQL (parametrised backends)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.apps import AppStore
from runtime.db.commands import CommandStore, IdempotencyConflict
from runtime.db.models import CommandRecord, CommandStatus, NotebookBlob, OutboxRecord
from runtime.db.notebooks import NotebookStore
from runtime.db.outbox import Outbox
from runtime.outgoing import OutgoingMessage
from schemas.commands import utcnow

pytest_plugins = ["tests.integration.database_fixtures"]
Sessions = async_sessionmaker[AsyncSession]


def _command(key: str | None = None, body: str = "a", user: str = "alice") -> CommandRecord:
    return CommandRecord(
        app="tests",
        type="ensure-user",
        user=user,
        payload={"type": "ensure-user", "user": user},
        idempotency_key=key,
        request_hash=hashlib.sha256(body.encode()).hexdigest(),
        correlation_id=str(uuid.uuid4()),
    )


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


async def test_idempotency_key_returns_the_earlier_command(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    first = await store.record(_command("k1"))
    again = await store.record(_command("k1"))
    assert first.created and not again.created
    assert again.record.id == first.record.id


async def test_idempotency_key_with_another_body_conflicts(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    await store.record(_command("k2", body="a"))
    with pytest.raises(IdempotencyConflict):
        await store.record(_command("k2", body="b"))


async def test_concurrent_requests_with_one_key_record_one_command(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    outcomes = await asyncio.gather(*(store.record(_command("k3")) for _ in range(6)))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.record.id for o in outcomes}) == 1


async def test_rejected_command_is_revived_by_a_retry(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    first = await store.record(_command("k4"))
    await store.set_status(first.record.id, CommandStatus.REJECTED)
    retried = await store.record(_command("k4"))
    assert retried.created and retried.record.id == first.record.id
    stored = await store.get(first.record.id)
    assert stored is not None and stored.status == CommandStatus.ACCEPTED


async def test_attempts_finish_once_and_order_per_user(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    earlier = (await store.record(_command(user="bob"))).record
    later = (await store.record(_command(user="bob"))).record
    assert (await store.earlier_unfinished(later)) is not None
    running = await store.begin_attempt(earlier.id)
    assert running is not None and running.attempts == 1
    await store.finish(earlier.id, CommandStatus.SUCCEEDED, result={"user": "bob"})
    again = await store.finish(earlier.id, CommandStatus.FAILED, error={"code": "x"})
    assert again is not None and again.status == CommandStatus.SUCCEEDED
    assert again.result == {"user": "bob"} and again.finished_at is not None
    assert again.finished_at.tzinfo is not None
    assert (await store.earlier_unfinished(later)) is None
    assert await store.get(earlier.id, app="another-app") is None


async def test_identical_content_is_not_stored_twice(db_sessions: Sessions) -> None:
    store = NotebookStore(db_sessions)
    first = await store.add_version(
        user="carol", path="a.ipynb", content="{1}", sha256=_sha("{1}"), origin="command"
    )
    same = await store.add_version(
        user="carol", path="a.ipynb", content="{1}", sha256=_sha("{1}"), origin="jupyter"
    )
    other_path = await store.add_version(
        user="carol", path="b.ipynb", content="{1}", sha256=_sha("{1}"), origin="jupyter"
    )
    changed = await store.add_version(
        user="carol", path="a.ipynb", content="{2}", sha256=_sha("{2}"), origin="jupyter"
    )
    assert first.created and not same.created and same.id == first.id
    assert other_path.created and changed.created
    assert [v.id for v in await store.versions("carol", "a.ipynb")] == [changed.id, first.id]
    async with db_sessions() as session:
        blobs = (await session.exec(select(func.count()).select_from(NotebookBlob))).one()
    assert blobs == 2
    assert await store.content(first.sha256) == "{1}"


async def test_a_redelivered_save_returns_the_version_it_made(db_sessions: Sessions) -> None:
    store = NotebookStore(db_sessions)
    command_id = uuid.uuid4()
    made = await store.add_version(
        user="dave",
        path="n.ipynb",
        content="{1}",
        sha256=_sha("{1}"),
        origin="command",
        command_id=command_id,
    )
    redelivered = await store.add_version(
        user="dave",
        path="n.ipynb",
        content="{2}",
        sha256=_sha("{2}"),
        origin="command",
        command_id=command_id,
    )
    assert made.created and not redelivered.created and redelivered.id == made.id
    assert len(await store.versions("dave", "n.ipynb")) == 1


async def test_rename_and_delete_follow_jupyter(db_sessions: Sessions) -> None:
    store = NotebookStore(db_sessions)
    version = await store.add_version(
        user="erin", path="old.ipynb", content="{1}", sha256=_sha("{1}"), origin="jupyter"
    )
    await store.add_version(
        user="erin", path="taken.ipynb", content="{2}", sha256=_sha("{2}"), origin="jupyter"
    )
    assert await store.rename("erin", "old.ipynb", "new.ipynb")
    assert not await store.rename("erin", "new.ipynb", "taken.ipynb")
    assert not await store.rename("erin", "missing.ipynb", "x.ipynb")
    latest = await store.latest("erin", "new.ipynb")
    assert latest is not None and latest.id == version.id
    assert await store.latest("erin", "old.ipynb") is None
    assert await store.mark_deleted("erin", "new.ipynb")
    summaries = {s.path: s for s in await store.notebooks("erin")}
    assert summaries["new.ipynb"].deleted and not summaries["taken.ipynb"].deleted
    restored = await store.add_version(
        user="erin", path="new.ipynb", content="{1}", sha256=_sha("{1}"), origin="command"
    )
    assert not restored.created
    assert not {s.path: s for s in await store.notebooks("erin")}["new.ipynb"].deleted


async def test_revoked_keys_no_longer_authenticate(db_sessions: Sessions) -> None:
    store = AppStore(db_sessions)
    issued = await store.issue_key("app-one", allowed_types=["save"], user_prefix="app1-")
    other = await store.issue_key("app-one")
    identity = await store.authenticate(issued.key)
    assert identity is not None and identity.allowed_types == frozenset({"save"})
    assert identity.user_prefix == "app1-"
    listed = await store.list_keys()
    assert all(issued.key not in str(row) for row in listed)
    assert await store.revoke(issued.key[:12]) == 1
    assert await store.authenticate(issued.key) is None
    assert await store.authenticate(other.key) is not None
    assert await store.revoke(issued.key_id) == 0
    assert await store.authenticate("orch_not-a-key") is None


def _event(caused_by: uuid.UUID, n: int) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=str(uuid.uuid5(caused_by, f"event-{n}")),
        exchange="orch.events",
        routing_key="notebook.saved",
        body=b'{"n": %d}' % n,
        caused_by=caused_by,
        correlation_id="corr",
        content_type="application/cloudevents+json",
        type_="notebook.saved",
    )


async def test_finish_records_the_outcome_and_its_messages_once(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    outbox = Outbox(db_sessions.kw["bind"])
    command = (await store.record(_command(user="outboxer"))).record
    messages = [_event(command.id, 1), _event(command.id, 2)]
    await store.finish(command.id, CommandStatus.SUCCEEDED, result={}, outbox=messages)
    again = [_event(command.id, 3)]
    await store.finish(command.id, CommandStatus.SUCCEEDED, result={}, outbox=again)
    assert await outbox.of_cause(command.id) == messages  # the second finish added nothing
    await outbox.remove([messages[0].message_id])
    assert await outbox.of_cause(command.id) == messages[1:]


async def test_the_relay_claims_stale_outbox_rows_once(db_sessions: Sessions) -> None:
    outbox = Outbox(db_sessions.kw["bind"])
    store = CommandStore(db_sessions)
    command = (await store.record(_command(user="relayed"))).record
    await store.finish(
        command.id, CommandStatus.SUCCEEDED, result={}, outbox=[_event(command.id, 1)]
    )
    fresh = await outbox.claim_stale(timedelta(minutes=1), 10)
    assert command.id not in {m.caused_by for m in fresh}  # not stale yet
    async with db_sessions() as session:  # as if left there an hour ago
        await session.exec(
            update(OutboxRecord)
            .where(col(OutboxRecord.caused_by) == command.id)
            .values(created_at=utcnow() - timedelta(hours=1))
        )
        await session.commit()
    first, second = await asyncio.gather(
        outbox.claim_stale(timedelta(minutes=1), 1000),
        outbox.claim_stale(timedelta(minutes=1), 1000),
    )
    mine = [m for m in [*first, *second] if m.caused_by == command.id]
    assert len(mine) == 1  # two relays at once: one of them takes the row


async def test_stale_unfinished_commands_are_claimed_once(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    accepted = (await store.record(_command(user="stale-a"))).record
    running = (await store.record(_command(user="stale-r"))).record
    await store.begin_attempt(running.id)
    finished = (await store.record(_command(user="stale-f"))).record
    await store.finish(finished.id, CommandStatus.SUCCEEDED, result={})
    bounds = {"limit": 1000, "max_attempts": 25}
    long_ago = await store.claim_stale(
        accepted_for=timedelta(hours=1), running_for=timedelta(hours=1), **bounds
    )
    assert {accepted.id, running.id} & {c.id for c in long_ago} == set()
    only_accepted = await store.claim_stale(
        accepted_for=timedelta(0), running_for=timedelta(hours=1), **bounds
    )
    ids = {c.id for c in only_accepted}
    assert accepted.id in ids and running.id not in ids and finished.id not in ids
    claimed_again = await store.claim_stale(
        accepted_for=timedelta(milliseconds=500), running_for=timedelta(0), **bounds
    )
    ids = {c.id for c in claimed_again}
    assert accepted.id not in ids  # the claim touched it
    assert running.id in ids and finished.id not in ids


async def test_waiting_counts_accepted_commands_left_untouched(db_sessions: Sessions) -> None:
    store = CommandStore(db_sessions)
    before, _ = await store.waiting(timedelta(0))
    waiting = (await store.record(_command(user="waiter"))).record
    running = (await store.record(_command(user="runner"))).record
    await store.begin_attempt(running.id)
    count, oldest = await store.waiting(timedelta(0))
    assert count == before + 1
    assert oldest is not None and oldest.tzinfo is not None
    assert oldest <= waiting.updated_at
    assert (await store.waiting(timedelta(hours=1)))[0] < count  # the new one is recent
