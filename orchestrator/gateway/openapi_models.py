"""Pydantic models of the gateway's response bodies, used to generate the OpenAPI document.

The handlers build these shapes as plain dicts (cheaper on the hot path); the
schemathesis test checks every real response against the schemas generated here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.db.models import CommandStatus
from schemas.commands import CommandType
from schemas.events import ChangeSummary, SaveOrigin
from schemas.lifecycle import CommandProgress


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldProblem(_Closed):
    """One invalid input: the field (dotted location, parameter or header) and why."""

    field: str
    problem: str


class ErrorDetail(_Closed):
    """A stable machine code, a message for people, and per-field problems when known."""

    code: str = Field(examples=["invalid_command", "unauthorized", "bus_unavailable"])
    message: str
    details: list[FieldProblem] | None = None


class ErrorBody(_Closed):
    """Every error answer of the gateway."""

    error: ErrorDetail


_SHA256 = r"^[0-9a-f]{64}$"


class EnsureUserResult(_Closed):
    """The result of a succeeded ``ensure-user``."""

    user: str
    created: bool = Field(description="False when the user already existed")


class StartServerResult(_Closed):
    """The result of a succeeded ``start-server``."""

    user: str
    server_url: str = Field(description="The Hub URL of the user's (ready) default server")


class StopServerResult(_Closed):
    """The result of a succeeded ``stop-server``."""

    user: str
    stopped: bool = Field(description="Always true: the server is not running any more")
    was_running: bool
    kept: list[str] = Field(
        default_factory=list,
        description="Open notebooks whose latest content was stored before the stop",
    )


class CullServerResult(_Closed):
    """The result of the orchestrator's own ``cull-server`` (an idle or old server)."""

    user: str
    culled: bool = Field(description="False when the user came back or nothing ran")
    reason: Literal["idle", "max_age"] | None = None
    why: str | None = Field(default=None, description="Why not culled")
    kept: list[str] = Field(
        default_factory=list,
        description="Open notebooks whose latest content was stored before the stop",
    )


class MoveUserResult(_Closed):
    """The result of an operator's ``move-user`` (the workspace moved to another Hub)."""

    user: str
    from_hub: str | None = Field(description="Where it lived (null: it was already there)")
    to_hub: str
    notebooks: list[str] = Field(
        default_factory=list, description="The notebooks written on the new Hub"
    )
    stored: list[str] = Field(
        default_factory=list,
        description="Notebooks whose content on the old Hub was stored as a new version",
    )


class CreateNotebookResult(_Closed):
    """The result of a succeeded ``create``."""

    path: str = Field(description="The notebook's path (the chosen name for a folder create)")
    created: bool = Field(description="False when a notebook was already at ``path``")


class RestoreNotebookResult(_Closed):
    """The result of a succeeded ``restore``."""

    path: str
    version_id: uuid.UUID = Field(description="The version that was written back")
    sha256: str = Field(pattern=_SHA256, description="Its content hash")
    latest_version_id: uuid.UUID = Field(
        description="The version the restore stored (origin 'restore'), now the latest"
    )


class SaveNotebookResult(_Closed):
    """The result of a succeeded ``save``."""

    path: str
    version_id: uuid.UUID = Field(description="The stored version (the latest when unchanged)")
    sha256: str = Field(pattern=_SHA256)
    size: int = Field(ge=0, description="Bytes of the canonical content")
    new_version: bool = Field(description="False when the content equals the latest version")


class OpenNotebookResult(_Closed):
    """The result of a succeeded ``open``."""

    path: str
    restored_version_id: uuid.UUID | None = Field(
        description="The stored version written back when the file was missing, else null"
    )
    launch_url: str = Field(description="Where to load the notebook (iframe src)")
    expires_at: datetime | None = Field(
        description="When a single-use launch link expires; null for a plain lab URL"
    )
    mode: Literal["edit", "view"] = Field(
        default="edit", description="view: launch_url is the read-only view of version_id"
    )
    version_id: uuid.UUID | None = Field(
        default=None, description="The version the view shows (view mode only)"
    )


# The result model of each command type (every type has one).
RESULT_MODELS: dict[CommandType, type[BaseModel]] = {
    CommandType.ENSURE_USER: EnsureUserResult,
    CommandType.START_SERVER: StartServerResult,
    CommandType.STOP_SERVER: StopServerResult,
    CommandType.CREATE: CreateNotebookResult,
    CommandType.RESTORE: RestoreNotebookResult,
    CommandType.SAVE: SaveNotebookResult,
    CommandType.OPEN: OpenNotebookResult,
    CommandType.CULL_SERVER: CullServerResult,
    CommandType.MOVE_USER: MoveUserResult,
}

CommandResult = (
    EnsureUserResult
    | StartServerResult
    | StopServerResult
    | CreateNotebookResult
    | RestoreNotebookResult
    | SaveNotebookResult
    | OpenNotebookResult
    | CullServerResult
    | MoveUserResult
)


class CommandError(_Closed):
    """Why a command failed: a stable code and a message a person can act on."""

    code: str = Field(
        description="not_found (an unknown version, a missing file to save), conflict (a "
        "restore's if_version), invalid_notebook, spawn_failed, hub_forbidden, permanent, "
        "retries_exhausted (transient failures outlasted the retries), internal_error",
        examples=["not_found", "conflict", "retries_exhausted"],
    )
    message: str


class CommandView(_Closed):
    """A command as its app sees it: status, attempts, result or error, timestamps.

    ``result`` is the result model of the command's ``type`` (the document says which
    with ``if``/``then``); it is set once the command succeeded, ``error`` once it failed.
    """

    id: uuid.UUID
    type: CommandType
    user: str
    status: CommandStatus = Field(
        description="accepted → running → succeeded | failed; rejected: the bus never "
        "confirmed it (the POST was answered 503)"
    )
    attempts: int = Field(ge=0)
    result: CommandResult | None = Field(
        description="Set when succeeded: the result model named after the command type "
        "(ensure-user → EnsureUserResult, start-server → StartServerResult, stop-server → "
        "StopServerResult, create → CreateNotebookResult, restore → RestoreNotebookResult, "
        "save → SaveNotebookResult, open → OpenNotebookResult, cull-server → "
        "CullServerResult, move-user → MoveUserResult)"
    )
    error: CommandError | None = Field(description="Set when failed")
    progress: CommandProgress | None = Field(
        description="While it runs: queued (behind the user's earlier commands), "
        "waiting_for_spawn_slot (position in line), spawning (the Hub's percent and "
        "message), writing; done once finished; null before a consumer took it"
    )
    correlation_id: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    status_url: str


class NotebookSummary(_Closed):
    """One notebook of a user and its latest stored version."""

    path: str
    latest_version_id: uuid.UUID | None
    updated_at: datetime
    deleted: bool


class NotebookList(_Closed):
    """A user's notebooks, most recently updated first."""

    user: str
    notebooks: list[NotebookSummary]


class VersionView(_Closed):
    """One stored version of a notebook (without its content)."""

    id: uuid.UUID
    user: str
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    origin: SaveOrigin = Field(description="Who wrote it: command, create, restore or jupyter")
    command_id: uuid.UUID | None = Field(description="The command that wrote it, if any")
    app: str | None = Field(description="The app of that command")
    restored_from: uuid.UUID | None = Field(description="The version a restore wrote back")
    before_overwrite: bool = Field(
        description="Unsaved content a restore found on disk and kept before overwriting it"
    )
    created_at: datetime


class VersionList(_Closed):
    """The versions of one notebook, newest first."""

    user: str
    path: str
    versions: list[VersionView]


class VersionWithContent(VersionView):
    """One version with its nbformat document."""

    content: dict[str, Any] | None


class CellMark(_Closed):
    """What happened to one cell, with its index in each version (null where absent)."""

    change: Literal["added", "removed", "changed", "unchanged"]
    before_index: int | None
    after_index: int | None
    preview: str = Field(description="The first line of the cell's source (80 characters)")


class VersionDiff(_Closed):
    """What changed from one version of a notebook (``from``) to another (``to``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    path: str
    from_: VersionView = Field(alias="from", description="The earlier version")
    to: VersionView = Field(description="The version asked for")
    summary: ChangeSummary
    cells: list[CellMark] = Field(
        description="Each cell's fate, in the order of 'to' (removed cells where they were)"
    )
    diff: list[dict[str, Any]] = Field(
        description="nbdime's diff of the two notebooks (JSON diff entries: op, key, ...), "
        "large outputs compared by hash"
    )
    outputs_stripped: int = Field(
        ge=0, description="Outputs over 64 KiB replaced by their size and hash before diffing"
    )


class LaunchLink(_Closed):
    """A single-use launch link for the iframe of one notebook."""

    user: str
    path: str
    launch_url: str
    expires_at: datetime


class Liveness(_Closed):
    """The process is alive."""

    status: Literal["ok"]
    instance: str = Field(
        description="ORCH_INSTANCE of this process: who started it can tell its answers "
        "from those of another process on the same port"
    )


class Readiness(_Closed):
    """Whether the gateway can accept commands, with one entry per dependency."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    instance: str = Field(description="ORCH_INSTANCE of this process (as in /healthz)")


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    CommandView,
    NotebookList,
    VersionList,
    VersionWithContent,
    VersionDiff,
    LaunchLink,
    Liveness,
    Readiness,
)
