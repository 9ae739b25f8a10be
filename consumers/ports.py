"""The ports the consumers depend on, and the value types those ports speak.

Handlers and processors take these as arguments; adapters implement them: the Hub
client (:class:`HubPort`), the contents client (:class:`ContentsPort`), the database
stores (:class:`VersionStore`, :class:`NotebookIndex`, :class:`CommandLog`,
:class:`WorkspaceDirectory`), the
confirmed publisher (:class:`BusPublisher`) and aio-pika's incoming message
(:class:`InboundMessage`). Unit tests substitute in-memory fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from runtime.outgoing import OutgoingMessage
from schemas.events import CloudEvent, EventKind
from schemas.lifecycle import CommandProgress, ProgressPhase, StopReason
from schemas.versions import NotebookSummary, StoredVersion
from schemas.workspaces import MoveStep, Workspace


@dataclass(frozen=True)
class ServerState:
    """A user's default server as the Hub reports it.

    ``pending`` is the Hub's pending action (``spawn``, ``stop``) or None; ``url`` is
    the server's path on the public proxy once it is ready.
    """

    user_exists: bool
    ready: bool
    pending: str | None
    url: str | None


@dataclass(frozen=True)
class RunningServer:
    """One Hub user's default server in the Hub's list of active servers."""

    user: str
    ready: bool
    pending: str | None
    started: datetime | None


@dataclass(frozen=True)
class FlushReport:
    """What the JupyterLab pages open on a server did when asked to save: how many were
    connected, how many answered, and the notebooks they saved."""

    pages: int
    reported: int
    saved: tuple[str, ...]


class SpawnObserver(Protocol):
    """Told what happens while a server is brought up for a command."""

    async def waiting_for_slot(self, position: int) -> None:
        """Every spawn slot is taken; this spawn is ``position`` in line (1 = next)."""
        ...

    async def starting(self) -> None:
        """The Hub was asked to start the server."""
        ...

    async def spawning(self, percent: int | None, message: str | None) -> None:
        """The Hub reported spawn progress."""
        ...

    async def ready(self, url: str, seconds: float | None) -> None:
        """The server is ready (``seconds`` since the start request, if this spawn
        started it)."""
        ...

    async def spawn_failed(self, reason: str) -> None:
        """The Hub reported that the spawn failed."""
        ...


class CommandObserver(SpawnObserver, Protocol):
    """Told what a running command does: its progress and the server's lifecycle."""

    async def progress(
        self,
        phase: ProgressPhase,
        *,
        message: str | None = None,
        position: int | None = None,
        percent: int | None = None,
    ) -> None:
        """The command entered ``phase``."""
        ...

    async def stopping(self, reason: StopReason) -> None:
        """The server is about to be stopped."""
        ...

    async def stopped(self, reason: StopReason, *, was_running: bool) -> None:
        """The server was stopped (or was found not running)."""
        ...

    async def cull_called_off(self) -> None:
        """A scheduled cull did not happen (the user came back, or nothing runs)."""
        ...


class HubPort(Protocol):
    """Users and servers on the Hub. Transient Hub failures raise ``TransientError``."""

    async def ping(self) -> None:
        """Raise ``TransientError`` unless the Hub answers now (a health check)."""
        ...

    async def server_state(self, user: str) -> ServerState:
        """The user's default server now (``user_exists`` False for an unknown user)."""
        ...

    async def ensure_user(self, user: str) -> bool:
        """Create the user if missing; True if it was created now."""
        ...

    async def start_server(
        self,
        user: str,
        known: ServerState | None = None,
        observer: SpawnObserver | None = None,
    ) -> str:
        """Start the server unless running and wait until ready; return its URL path.

        ``known`` saves a Hub call when the caller has just read the state;
        ``observer`` hears the wait for a slot, the spawn's progress and its end.
        """
        ...

    async def running_servers(self) -> list[RunningServer]:
        """Every user's default server the Hub has running or pending."""
        ...

    async def stop_server(self, user: str) -> bool:
        """Stop the server and wait until stopped; True if one was running."""
        ...


class NotebookReader(Protocol):
    """Reads files in a user's running server (through the contents API)."""

    async def exists(self, user: str, path: str) -> bool:
        """True if ``path`` exists (file or folder)."""
        ...

    async def read_notebook(self, user: str, path: str) -> dict[str, Any]:
        """The notebook at ``path`` as an nbformat dict (``NotFoundError`` if absent)."""
        ...


class ContentsPort(NotebookReader, Protocol):
    """Reads and writes files in a user's running server."""

    async def ensure_folder(self, user: str, folder: str) -> None:
        """Create ``folder`` and its parents if missing (idempotent)."""
        ...

    async def ensure_parent(self, user: str, path: str) -> None:
        """Create the folder that holds ``path`` (and its parents) if missing."""
        ...

    async def write_notebook(self, user: str, path: str, content: dict[str, Any]) -> None:
        """Write ``content`` (an nbformat dict) at ``path``, replacing what is there."""
        ...

    async def last_activity(self, user: str) -> datetime | None:
        """The server's own last user activity; None if it does not answer."""
        ...

    async def open_notebooks(self, user: str) -> list[str]:
        """Paths of the notebooks with a kernel session on the server."""
        ...

    async def flush_pages(self, user: str, timeout_seconds: float) -> FlushReport:
        """Ask the open JupyterLab pages to save their unsaved notebooks."""
        ...

    async def new_untitled(self, user: str, folder: str) -> str:
        """Create a new untitled notebook in ``folder``; return its path."""
        ...

    async def list_notebooks(self, user: str) -> list[str]:
        """Paths of every notebook in the user's server, in every folder."""
        ...


class VersionWriter(Protocol):
    """Adds notebook versions."""

    async def previous_content(self, version_id: uuid.UUID) -> str | None:
        """The content of the version stored just before ``version_id`` of the same
        notebook (None for a notebook's first version)."""
        ...

    async def add_version(
        self,
        *,
        user: str,
        path: str,
        content: str,
        sha256: str,
        origin: str,
        command_id: uuid.UUID | None = None,
        app: str | None = None,
        restored_from: uuid.UUID | None = None,
        before_overwrite: bool = False,
    ) -> StoredVersion:
        """Store ``content`` as the latest version unless identical to the latest.

        Idempotent per ``command_id``: the same command gets back the version it made.
        ``origin``, ``command_id``, ``app``, ``restored_from`` and ``before_overwrite``
        say who wrote it.
        """
        ...


class VersionStore(VersionWriter, Protocol):
    """Stored notebook versions and their content."""

    async def latest(self, user: str, path: str) -> StoredVersion | None:
        """The latest version of ``path``, or None if none is stored."""
        ...

    async def version(self, version_id: uuid.UUID) -> StoredVersion | None:
        """One version by id, or None."""
        ...

    async def content(self, sha256: str) -> str | None:
        """The canonical notebook JSON with that hash, or None."""
        ...

    async def of_command(self, command_id: uuid.UUID) -> StoredVersion | None:
        """The version ``command_id`` stored, if it stored one."""
        ...

    async def stored_by(self, command_id: uuid.UUID) -> list[StoredVersion]:
        """Every version ``command_id`` stored, by path."""
        ...

    async def notebooks(self, user: str) -> list[NotebookSummary]:
        """Every tracked notebook of ``user``, deleted ones included."""
        ...


class NotebookIndex(VersionWriter, Protocol):
    """The notebooks the orchestrator tracks, as changes made inside Jupyter move them."""

    async def rename(self, user: str, old_path: str, new_path: str) -> bool:
        """Follow a rename (versions move along); False if ``old_path`` is untracked or
        ``new_path`` is taken."""
        ...

    async def mark_deleted(self, user: str, path: str) -> bool:
        """Mark the notebook deleted (versions are kept); False if it was not tracked or
        already deleted."""
        ...

    async def notebooks(self, user: str) -> list[NotebookSummary]:
        """Every tracked notebook of ``user``, deleted ones included."""
        ...


class MoveProgress(Protocol):
    """How far one move got (see :class:`MoveLog`)."""

    source: str
    target: str
    step: str
    stored: list[str]


class MoveLog(Protocol):
    """Durable progress of workspaces' moves between Hubs, one per ``move-user``."""

    async def begin(
        self, command_id: uuid.UUID, workspace: str, source: str, target: str
    ) -> MoveProgress:
        """The move of ``command_id`` as a crash left it, or new at step ``started``."""
        ...

    async def advance(
        self, command_id: uuid.UUID, step: MoveStep, *, stored: list[str] | None = None
    ) -> None:
        """Record that the move reached ``step``."""
        ...

    async def switch(self, command_id: uuid.UUID) -> None:
        """Make the move's target the workspace's Hub, and the move ``done``."""
        ...


class WorkspaceDirectory(Protocol):
    """The registry of workspaces (one Hub user per app and person)."""

    async def ensure(self, app: str, user: str) -> Workspace:
        """The workspace of ``user`` in ``app``, recorded if new."""
        ...

    async def owner(self, name: str) -> Workspace | None:
        """Whose workspace the Hub user ``name`` is, if it is one."""
        ...


class RecordedCommand(Protocol):
    """A command as the command log holds it (what the processor reads of it)."""

    @property
    def id(self) -> uuid.UUID:
        """The command id."""
        ...

    @property
    def user(self) -> str:
        """The Hub user it acts for."""
        ...

    @property
    def status(self) -> str:
        """A ``CommandStatus`` value."""
        ...

    @property
    def result(self) -> dict[str, Any] | None:
        """The result once succeeded."""
        ...

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"code", "message"}`` once failed."""
        ...

    @property
    def app(self) -> str:
        """The app that sent it."""
        ...

    @property
    def type(self) -> str:
        """A ``CommandType`` value."""
        ...

    @property
    def payload(self) -> dict[str, Any]:
        """The command as accepted (JSON)."""
        ...

    @property
    def correlation_id(self) -> str:
        """The correlation id of the request that sent it."""
        ...

    @property
    def attempts(self) -> int:
        """How many attempts began."""
        ...

    @property
    def created_at(self) -> datetime:
        """When the gateway accepted it."""
        ...

    @property
    def updated_at(self) -> datetime:
        """The latest change of status."""
        ...


class CommandLog(Protocol):
    """The durable record of each command's progress (the database)."""

    async def begin_attempt(self, command_id: uuid.UUID) -> RecordedCommand | None:
        """Mark the command running and count the attempt; None if unknown. A command
        in a final state is returned unchanged."""
        ...

    async def earlier_unfinished(self, record: Any) -> RecordedCommand | None:
        """An unfinished command of the same user accepted before ``record`` (a record
        ``begin_attempt`` returned), if any."""
        ...

    async def set_progress(self, command_id: uuid.UUID, progress: CommandProgress) -> None:
        """Show ``progress`` in the view of an unfinished command."""
        ...

    async def requeued(self, command_id: uuid.UUID) -> None:
        """The command waits for another attempt: back to ``accepted``."""
        ...

    async def finish(
        self,
        command_id: uuid.UUID,
        status: Any,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        outbox: Sequence[OutgoingMessage] = (),
    ) -> Any:
        """Record the final ``status`` (succeeded or failed) with its result or error,
        and the messages it causes in the outbox, in one transaction (a second finish
        records nothing)."""
        ...

    async def waiting(self, older_than: timedelta) -> tuple[int, datetime | None]:
        """How many commands are accepted and untouched for ``older_than``, and the
        oldest one's last change."""
        ...

    async def claim_stale(
        self, *, accepted_for: timedelta, running_for: timedelta, limit: int, max_attempts: int
    ) -> Sequence[RecordedCommand]:
        """Unfinished commands untouched for that long (their message may be lost),
        claimed (touched) so that no other relay takes them too."""
        ...


class OutboxPort(Protocol):
    """Messages recorded with the outcome that caused them, until the broker confirms."""

    async def of_cause(self, caused_by: uuid.UUID) -> list[OutgoingMessage]:
        """The messages ``caused_by`` recorded that are still unpublished."""
        ...

    async def claim_stale(self, older_than: timedelta, limit: int) -> list[OutgoingMessage]:
        """Messages unpublished for ``older_than``, claimed for the caller."""
        ...

    async def add(self, messages: Sequence[OutgoingMessage]) -> None:
        """Record messages no outcome commits, for the relay if publishing fails."""
        ...

    async def remove(self, message_ids: Sequence[str]) -> None:
        """Forget messages the broker confirmed."""
        ...


class InboundMessage(Protocol):
    """A message delivered by the broker (aio-pika's incoming message implements it)."""

    @property
    def body(self) -> bytes:
        """The raw body."""
        ...

    @property
    def headers(self) -> Any:
        """The AMQP headers (may be None or empty)."""
        ...

    @property
    def routing_key(self) -> str | None:
        """The routing key it was published with."""
        ...

    @property
    def message_id(self) -> str | None:
        """The publisher's message id."""
        ...

    @property
    def correlation_id(self) -> str | None:
        """The publisher's correlation id."""
        ...

    @property
    def content_type(self) -> str | None:
        """The MIME type of the body."""
        ...

    @property
    def type(self) -> str | None:
        """The AMQP ``type`` property."""
        ...

    @property
    def redelivered(self) -> bool | None:
        """True if the broker delivered it before (unacked then)."""
        ...

    async def ack(self) -> None:
        """Done with it for good: the broker forgets it."""
        ...

    async def nack(self, *, requeue: bool = True) -> None:
        """Give it back to the queue (``requeue``) or drop it."""
        ...


class BusPublisher(Protocol):
    """Publishes with publisher confirms; raises ``PublishFailed`` if not confirmed."""

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
        """Publish one persistent message and wait for the broker's confirm."""
        ...

    async def publish_event(self, kind: EventKind, event: CloudEvent[Any]) -> None:
        """Publish an event to the events exchange under its routing key."""
        ...

    async def publish_message(self, message: OutgoingMessage) -> None:
        """Publish a recorded message (e.g. from the outbox) and wait for the confirm."""
        ...
