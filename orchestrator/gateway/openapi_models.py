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
from schemas.events import SaveOrigin


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


class CommandView(_Closed):
    """A command as its app sees it: status, attempts, result or error, timestamps."""

    id: uuid.UUID
    type: CommandType
    user: str
    status: CommandStatus = Field(
        description="accepted → running → succeeded | failed; rejected: the bus never "
        "confirmed it (the POST was answered 503)"
    )
    attempts: int = Field(ge=0)
    result: dict[str, Any] | None
    error: dict[str, Any] | None
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
    LaunchLink,
    Liveness,
    Readiness,
)
