"""Events, in the past tense, wrapped in a CloudEvents 1.0 structured-JSON envelope.

Subscribers bind their own queues to the events exchange by routing key
(see :mod:`schemas.topology`). ``type`` is versioned: ``<prefix>.notebook.saved.v1``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.commands import CommandType, utcnow
from schemas.lifecycle import (
    CommandProgressed,
    EventData,
    ServerCullScheduled,
    ServerReady,
    ServerSpawnFailed,
    ServerStarting,
    ServerStopped,
    ServerStopping,
)
from schemas.versions import JUPYTER_ORIGIN

EVENT_TYPE_PREFIX = "io.github.notebook-orchestrator"
EVENT_SOURCE = "/notebook-orchestrator"


class SaveOrigin(StrEnum):
    """Who wrote a stored version.

    ``command``: a ``save`` command stored what the server had; ``create``: the
    orchestrator wrote a new empty notebook (``create``, or ``open`` of a new path);
    ``restore``: the orchestrator wrote an earlier version back (``restored_from``);
    ``jupyter``: a person saved inside Jupyter (also what a restore found unsaved on
    disk and kept first, ``before_overwrite``).
    """

    COMMAND = "command"
    CREATE = "create"
    RESTORE = "restore"
    JUPYTER = JUPYTER_ORIGIN


class ChangeSummary(BaseModel):
    """How many cells a version added, removed and changed against the one before."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cells_added: int = Field(ge=0)
    cells_removed: int = Field(ge=0)
    cells_changed: int = Field(ge=0)


class NotebookSaved(EventData):
    """A new version of a notebook was stored."""

    user: str
    path: str
    version_id: uuid.UUID
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    origin: SaveOrigin
    saved_at: datetime
    content: dict[str, Any] | None = Field(
        default=None, description="The nbformat document, inline only when small"
    )
    command_id: uuid.UUID | None = Field(
        default=None, description="The command that wrote it (origins command, create, restore)"
    )
    restored_from: uuid.UUID | None = Field(
        default=None, description="The version a restore wrote back (origin restore)"
    )
    before_overwrite: bool = Field(
        default=False,
        description="Content found unsaved on disk and kept before a restore overwrote it",
    )
    hub: str | None = Field(
        default=None, description="The JupyterHub the workspace lives on (several Hubs)"
    )
    changes: ChangeSummary | None = Field(
        default=None,
        description="Cells added, removed and changed against the version before (null for "
        "a notebook's first version)",
    )


class NotebookRenamed(EventData):
    """A notebook was renamed inside Jupyter (its versions are kept)."""

    user: str
    old_path: str
    new_path: str
    renamed_at: datetime


class NotebookDeleted(EventData):
    """A notebook was deleted inside Jupyter (its versions are kept)."""

    user: str
    path: str
    deleted_at: datetime


class CommandSucceeded(EventData):
    """A command reached ``succeeded``; ``result`` is what the status API shows."""

    command_id: uuid.UUID
    command_type: CommandType
    user: str
    result: dict[str, Any]


class CommandError(BaseModel):
    """Why a command failed: a stable code and a message a person can act on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str


class CommandFailed(EventData):
    """A command reached ``failed``: no more attempts will be made."""

    command_id: uuid.UUID
    command_type: CommandType
    user: str
    error: CommandError


class UserMoved(EventData):
    """A workspace moved to another JupyterHub: its notebooks were written there at
    their latest versions, and its commands, links and saves now go there."""

    user: str
    from_hub: str
    to_hub: str
    notebooks: list[str] = Field(description="The notebooks written on the new Hub")
    moved_at: datetime


class EventKind(StrEnum):
    """Event kinds; the value is the routing-key stem and the type's middle part."""

    NOTEBOOK_SAVED = "notebook.saved"
    NOTEBOOK_RENAMED = "notebook.renamed"
    NOTEBOOK_DELETED = "notebook.deleted"
    COMMAND_SUCCEEDED = "command.succeeded"
    COMMAND_FAILED = "command.failed"
    COMMAND_PROGRESSED = "command.progressed"
    SERVER_STARTING = "server.starting"
    SERVER_READY = "server.ready"
    SERVER_SPAWN_FAILED = "server.spawn_failed"
    SERVER_STOPPING = "server.stopping"
    SERVER_STOPPED = "server.stopped"
    SERVER_CULL_SCHEDULED = "server.cull_scheduled"
    USER_MOVED = "user.moved"


EVENT_DATA_MODELS: dict[EventKind, type[EventData]] = {
    EventKind.NOTEBOOK_SAVED: NotebookSaved,
    EventKind.NOTEBOOK_RENAMED: NotebookRenamed,
    EventKind.NOTEBOOK_DELETED: NotebookDeleted,
    EventKind.COMMAND_SUCCEEDED: CommandSucceeded,
    EventKind.COMMAND_FAILED: CommandFailed,
    EventKind.COMMAND_PROGRESSED: CommandProgressed,
    EventKind.SERVER_STARTING: ServerStarting,
    EventKind.SERVER_READY: ServerReady,
    EventKind.SERVER_SPAWN_FAILED: ServerSpawnFailed,
    EventKind.SERVER_STOPPING: ServerStopping,
    EventKind.SERVER_STOPPED: ServerStopped,
    EventKind.SERVER_CULL_SCHEDULED: ServerCullScheduled,
    EventKind.USER_MOVED: UserMoved,
}


def event_type(kind: EventKind, version: int = 1) -> str:
    """The CloudEvents ``type`` attribute for ``kind``."""
    return f"{EVENT_TYPE_PREFIX}.{kind.value}.v{version}"


DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 structured-mode envelope with ``correlationid`` and ``appid``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str = EVENT_SOURCE
    type: str
    time: datetime = Field(default_factory=utcnow)
    subject: str = Field(description="'<user>/<path>' for notebooks, the command id else")
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: str | None = None
    appid: str | None = None
    data: DataT


def routing_key(kind: EventKind, data: BaseModel) -> str:
    """Routing key of an event: the kind, plus the command type for command results."""
    if isinstance(data, CommandSucceeded | CommandFailed | CommandProgressed):
        return f"{kind.value}.{data.command_type.value}"
    return kind.value


def make_event(
    kind: EventKind,
    data: EventData,
    *,
    subject: str,
    correlation_id: str | None = None,
    app_id: str | None = None,
    caused_by: uuid.UUID | None = None,
    key: str = "",
) -> CloudEvent[Any]:
    """Wrap ``data`` in an envelope of the right versioned type.

    With ``caused_by`` (the command or notification that led to the event) the event
    id is derived from it, the kind, the subject and ``key``: publishing the same event
    again (a redelivered message) gives the same id, so subscribers can de-duplicate.
    ``key`` tells apart events of one kind and subject that one cause has several of (a
    restore over unsaved edits stores two versions of its notebook). Without
    ``caused_by`` the id is random.
    """
    if not isinstance(data, EVENT_DATA_MODELS[kind]):
        raise TypeError(f"{kind} carries {EVENT_DATA_MODELS[kind].__name__}")
    seed = f"{kind}:{subject}" + (f":{key}" if key else "")
    event_id = str(uuid.uuid4()) if caused_by is None else str(uuid.uuid5(caused_by, seed))
    return CloudEvent[Any](
        id=event_id,
        type=event_type(kind),
        subject=subject,
        correlationid=correlation_id,
        appid=app_id,
        data=data,
    )
