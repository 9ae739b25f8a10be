"""Tables (sqlmodel): apps and their keys, commands, notebooks and their versions.

Version content lives in ``notebook_blob`` keyed by sha256, so identical content is
stored once however many versions point at it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import uuid_utils.compat
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    LargeBinary,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from schemas.commands import utcnow
from schemas.workspaces import MoveStep


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use schemas.commands.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_command_id() -> uuid.UUID:
    """A new command id: a UUIDv7 (RFC 9562), 48 bits of milliseconds then 74 random bits.

    Time-ordered, so a new command's id lands at the end of the primary-key index, on a
    page the previous commands' ids have just written, instead of on a random page of it.
    """
    return uuid_utils.compat.uuid7()


def _ts(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), **kwargs))


class CommandStatus(StrEnum):
    """Lifecycle of a command; ``rejected`` means the bus never confirmed it (503)."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        """True when no more attempts will be made."""
        return self in (CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.REJECTED)


class App(SQLModel, table=True):
    """An internal web app allowed to send commands, with optional limits."""

    name: str = Field(primary_key=True, max_length=64)
    allowed_types: list[str] | None = Field(default=None, sa_column=Column(JSON))
    user_prefix: str | None = Field(default=None, max_length=64)
    # Culling policy (None: the consumers' defaults; 0 turns the rule off).
    idle_timeout_seconds: int | None = Field(default=None, ge=0)
    max_age_seconds: int | None = Field(default=None, ge=0)
    cull_grace_seconds: int | None = Field(default=None, ge=0)
    created_at: datetime = _ts(nullable=False)


class AppKey(SQLModel, table=True):
    """One API key of an app, stored only as its sha256 (keys are high-entropy)."""

    __tablename__ = "app_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app: str = Field(foreign_key="app.name", index=True)
    key_hash: str = Field(unique=True, index=True, max_length=64)
    key_prefix: str = Field(max_length=16)
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


UNFINISHED_STATUSES = (CommandStatus.ACCEPTED.value, CommandStatus.RUNNING.value)
_UNFINISHED_SQL = text("status IN ('accepted', 'running')")


class CommandRecord(SQLModel, table=True):
    """One accepted command and everything known about its execution.

    The row is also the command's outbox entry: the bus message is rebuilt from it
    (``runtime.bus.command_messages``), so the relay can publish it again whenever the
    broker may have lost it.
    """

    __tablename__ = "command"
    __table_args__ = (
        UniqueConstraint("app", "idempotency_key", name="uq_command_idem"),
        # the order barrier's query: a user's unfinished commands accepted before one.
        # Every index costs a page write per insert and status change, so the table has
        # none that no query uses (migration 0004 dropped four).
        Index("ix_command_user_status_created", "user", "status", "created_at"),
        # the relay's query: unfinished commands untouched for a while. Partial, so
        # finished commands (nearly all rows) are not in it.
        Index(
            "ix_command_unfinished_updated",
            "updated_at",
            sqlite_where=_UNFINISHED_SQL,
            postgresql_where=_UNFINISHED_SQL,
        ),
    )

    id: uuid.UUID = Field(default_factory=new_command_id, primary_key=True)
    app: str = Field(max_length=64)
    type: str = Field(max_length=32)
    user: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default=CommandStatus.ACCEPTED, max_length=16)
    attempts: int = 0
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    correlation_id: str = Field(max_length=128)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    progress: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class WorkspaceRecord(SQLModel, table=True):
    """A Hub user that holds one person's notebooks for one app (``schemas.workspaces``)."""

    __tablename__ = "workspace"
    __table_args__ = (UniqueConstraint("app", "user", name="uq_workspace_app_user"),)

    name: str = Field(primary_key=True, max_length=64)
    app: str = Field(max_length=64)
    user: str = Field(max_length=64)
    created_at: datetime = _ts(nullable=False)
    # the Hub it lives on (runtime.hubs); None: made before there were several Hubs,
    # so on the first configured one (written there on first use)
    hub: str | None = Field(default=None, max_length=32, index=True)


class Notebook(SQLModel, table=True):
    """A notebook at one path of one workspace (``user`` is the workspace's Hub user),
    and its latest stored version."""

    __table_args__ = (UniqueConstraint("user", "path", name="uq_notebook_user_path"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user: str = Field(index=True, max_length=64)
    path: str = Field(max_length=512)
    latest_version_id: uuid.UUID | None = None
    deleted: bool = False
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class NotebookBlob(SQLModel, table=True):
    """Notebook content by hash: identical content is stored once."""

    __tablename__ = "notebook_blob"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content: str = Field(sa_column=Column(Text, nullable=False))


class NotebookVersion(SQLModel, table=True):
    """One saved version of a notebook, and who wrote it (``schemas.versions``)."""

    __tablename__ = "notebook_version"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    notebook_id: uuid.UUID = Field(foreign_key="notebook.id", index=True)
    sha256: str = Field(foreign_key="notebook_blob.sha256", max_length=64)
    size: int
    origin: str = Field(max_length=16)
    command_id: uuid.UUID | None = Field(default=None, index=True)
    app: str | None = Field(default=None, max_length=64)
    restored_from: uuid.UUID | None = None
    before_overwrite: bool = False
    created_at: datetime = _ts(nullable=False)


class OutboxRecord(SQLModel, table=True):
    """A message recorded with the outcome that caused it, not yet confirmed by the bus.

    Written in the transaction that finishes a command (its events), deleted once the
    broker confirmed it; the relay publishes whatever stays here.
    """

    __tablename__ = "outbox_message"

    message_id: str = Field(primary_key=True, max_length=64)
    exchange: str = Field(max_length=128)
    routing_key: str = Field(max_length=255)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    caused_by: uuid.UUID | None = Field(default=None, index=True)
    correlation_id: str | None = Field(default=None, max_length=128)
    content_type: str = Field(max_length=64)
    message_type: str | None = Field(default=None, max_length=128)
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False, index=True)


class SpawnSlot(SQLModel, table=True):
    """One of a Hub's spawn slots, shared by all consumer processes (a lease, not a
    lock)."""

    __tablename__ = "spawn_slot"

    hub: str = Field(primary_key=True, max_length=32)
    slot: int = Field(primary_key=True)
    holder: str | None = Field(default=None, max_length=128)
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class SpawnWaiter(SQLModel, table=True):
    """A spawn waiting for a slot: its place in line is the number of live waiters that
    came before it. A waiter refreshes ``seen_at`` while it waits; one not seen for a
    while (its process died) no longer counts."""

    __tablename__ = "spawn_waiter"

    holder: str = Field(primary_key=True, max_length=128)
    hub: str = Field(max_length=32)
    since: datetime = _ts(nullable=False, index=True)
    seen_at: datetime = _ts(nullable=False)


class ServerRecord(SQLModel, table=True):
    """A workspace's server as the orchestrator last saw it, and its scheduled cull.

    ``running`` servers are compared with the Hub's list: one the Hub no longer has
    stopped without the orchestrator (``server.stopped``, reason ``hub``).
    """

    __tablename__ = "server"

    workspace: str = Field(primary_key=True, max_length=64)
    app: str = Field(max_length=64)
    user: str = Field(max_length=64)
    running: bool = False
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_activity: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    cull_reason: str | None = Field(default=None, max_length=16)
    cull_scheduled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    cull_deadline: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    cull_command_id: uuid.UUID | None = None
    updated_at: datetime = _ts(nullable=False)


class JobLease(SQLModel, table=True):
    """Which process runs a job that must run once system-wide (e.g. the culler)."""

    __tablename__ = "job_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str | None = Field(default=None, max_length=128)
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class HubStatus(SQLModel, table=True):
    """What the orchestrator knows of one configured Hub: whether it takes new users
    (not ``draining``, and ``healthy`` at the last check) and that check's outcome."""

    __tablename__ = "hub_status"

    name: str = Field(primary_key=True, max_length=32)
    draining: bool = False
    healthy: bool = True
    checked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    error: str | None = Field(default=None, max_length=500)


class HubMove(SQLModel, table=True):
    """One workspace's move to another Hub, made by the ``move-user`` command
    ``command_id``; the row stays as the record of the move once done."""

    __tablename__ = "hub_move"

    command_id: uuid.UUID = Field(primary_key=True)
    workspace: str = Field(index=True, max_length=64)
    source: str = Field(max_length=32)
    target: str = Field(max_length=32)
    step: str = Field(default=MoveStep.STARTED, max_length=16)
    stored: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class NotebookDiff(SQLModel, table=True):
    """A computed diff between two notebook contents, by their hashes (a cache: the
    same two contents always give the same diff)."""

    __tablename__ = "notebook_diff"

    before_sha256: str = Field(primary_key=True, max_length=64)
    after_sha256: str = Field(primary_key=True, max_length=64)
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False)
