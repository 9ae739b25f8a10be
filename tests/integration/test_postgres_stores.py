"""The stores behave the same on SQLite and on a real PostgreSQL (parametrised backends)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.apps import AppStore
from runtime.db.commands import CommandStore, IdempotencyConflict
from runtime.db.models import CommandRecord, CommandStatus, NotebookBlob
from runtime.db.notebooks import NotebookStore

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
