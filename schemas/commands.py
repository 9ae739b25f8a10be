"""Commands apps send, in the imperative: the request models and the bus message.

Every command names an app-level ``user`` and is idempotent: performing it twice
converges to the same state. The gateway validates request bodies against
:data:`Command`; consumers decode :class:`CommandMessage` from the bus.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.names import FolderPath, NotebookPath, Username


class CommandType(StrEnum):
    """The command types; the value is the wire name and the routing-key suffix."""

    ENSURE_USER = "ensure-user"
    START_SERVER = "start-server"
    CREATE = "create"
    RESTORE = "restore"
    SAVE = "save"
    OPEN = "open"
    STOP_SERVER = "stop-server"
    CULL_SERVER = "cull-server"
    MOVE_USER = "move-user"


class _CommandBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user: Username = Field(description="JupyterHub username the command acts for")


class EnsureUser(_CommandBase):
    """Create the Hub user if missing."""

    type: Literal[CommandType.ENSURE_USER] = CommandType.ENSURE_USER


class StartServer(_CommandBase):
    """Ensure the user exists and their default server runs and is ready."""

    type: Literal[CommandType.START_SERVER] = CommandType.START_SERVER


class StopServer(_CommandBase):
    """Stop the user's default server (absent or stopped is success)."""

    type: Literal[CommandType.STOP_SERVER] = CommandType.STOP_SERVER


class CreateNotebook(_CommandBase):
    """Create an empty notebook at ``path``, or an untitled one in ``folder``.

    Exactly one of ``path`` and ``folder`` is given.
    """

    type: Literal[CommandType.CREATE] = CommandType.CREATE
    path: NotebookPath | None = None
    folder: FolderPath | None = None

    @model_validator(mode="after")
    def _path_or_folder(self) -> CreateNotebook:
        if (self.path is None) == (self.folder is None):
            raise ValueError("give exactly one of 'path' and 'folder'")
        return self


class RestoreNotebook(_CommandBase):
    """Write a stored version (``version_id``, or the latest) to ``path``.

    What is on disk, if it differs from the latest stored version, is stored as a
    version first. With ``if_version`` (the version the app believes is current) the
    restore fails with ``conflict`` and writes nothing unless the latest version is
    that one and the disk holds it unchanged.
    """

    type: Literal[CommandType.RESTORE] = CommandType.RESTORE
    path: NotebookPath
    version_id: uuid.UUID | None = None
    if_version: uuid.UUID | None = None


class SaveNotebook(_CommandBase):
    """Read ``path`` from the user's server and store it as a new version."""

    type: Literal[CommandType.SAVE] = CommandType.SAVE
    path: NotebookPath


class OpenNotebook(_CommandBase):
    """Ensure user and server, restore the latest version or create, return a launch URL.

    With ``mode: "view"`` nothing is started: the link shows the latest stored version
    read-only (rendered by the gateway, outputs included; it cannot be edited, run or
    saved), and a notebook with no stored version fails with ``not_found``.
    """

    type: Literal[CommandType.OPEN] = CommandType.OPEN
    path: NotebookPath
    mode: Literal["edit", "view"] = "edit"


class CullServer(_CommandBase):
    """Stop an idle or too old server (the orchestrator's own command, never an app's).

    Queued in the user's command order like any command. If the user was active after
    ``scheduled_at`` (when the cull was announced) it does nothing; otherwise the open
    notebooks are stored as versions, then the server is stopped.
    """

    type: Literal[CommandType.CULL_SERVER] = CommandType.CULL_SERVER
    reason: Literal["idle", "max_age"]
    scheduled_at: datetime


class MoveUser(_CommandBase):
    """Move the workspace to Hub ``to_hub`` (an operator's command, never an app's).

    Queued in the user's command order like any command: every notebook on the
    current Hub is stored as a version if changed, its server is stopped, the user is
    ensured on ``to_hub``, the latest version of every notebook is written there, and
    only then is the workspace's Hub switched. Resumable after a crash at any step;
    a workspace already on ``to_hub`` is success.
    """

    type: Literal[CommandType.MOVE_USER] = CommandType.MOVE_USER
    to_hub: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="The Hub to move to")


_AppCommand = (
    EnsureUser
    | StartServer
    | StopServer
    | CreateNotebook
    | RestoreNotebook
    | SaveNotebook
    | OpenNotebook
)
Command = Annotated[_AppCommand, Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
# Every command model apps may send, in the union's order (exports, contract tests).
COMMAND_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(Command)[0])
# What travels on the bus: the apps' commands and the orchestrator's own.
BusCommand = Annotated[_AppCommand | CullServer | MoveUser, Field(discriminator="type")]
BUS_COMMAND_ADAPTER: TypeAdapter[BusCommand] = TypeAdapter(BusCommand)
INTERNAL_COMMAND_TYPES = frozenset({CommandType.CULL_SERVER, CommandType.MOVE_USER})


def utcnow() -> datetime:
    """Timezone-aware now in UTC (the only clock the contracts use)."""
    return datetime.now(UTC)


class CommandMessage(BaseModel):
    """What travels on the bus for one accepted command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    app: str
    correlation_id: str
    accepted_at: datetime
    command: BusCommand

    @property
    def user(self) -> str:
        """The user the command acts for (also the partition routing key)."""
        return self.command.user
