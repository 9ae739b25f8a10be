"""The server lifecycle as apps see it: progress of a running command, server events.

``CommandProgress`` is what ``GET /v1/commands/{id}`` shows in ``progress`` while a
command runs (and what ``command.progressed`` events carry). The ``Server*`` models
are the data of the ``server.*`` events: the orchestrator emits them for servers it
starts or stops, and for servers it finds stopped without its doing (``reason: hub``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.commands import CommandType


class ProgressPhase(StrEnum):
    """Where a running command is.

    ``queued``: behind an earlier unfinished command of the same user;
    ``waiting_for_spawn_slot``: its server must start and every spawn slot is taken
    (``position`` is its place in line, 1 = next); ``spawning``: the Hub is starting
    the server (``percent`` and ``message`` are the Hub's); ``writing``: reading or
    writing notebooks in the running server; ``done``: finished.
    """

    QUEUED = "queued"
    WAITING_FOR_SPAWN_SLOT = "waiting_for_spawn_slot"
    SPAWNING = "spawning"
    WRITING = "writing"
    DONE = "done"


class CommandProgress(BaseModel):
    """How far a running command is; replaced as a whole at each change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: ProgressPhase
    message: str | None = Field(default=None, max_length=500)
    percent: int | None = Field(
        default=None, ge=0, le=100, description="The Hub's spawn percentage (spawning)"
    )
    position: int | None = Field(
        default=None, ge=1, description="Place in the spawn line, 1 = next (waiting)"
    )
    updated_at: datetime


class EventData(BaseModel):
    """Base of every event's ``data``: closed (no unknown fields) and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandProgressed(EventData):
    """A running command moved on (best effort: the command view is the truth)."""

    command_id: uuid.UUID
    command_type: CommandType
    user: str
    progress: CommandProgress


class StopReason(StrEnum):
    """Why a server stopped: an app's ``stop-server``, idle or too old (culled by the
    orchestrator), the Hub stopped it without the orchestrator (found stopped), or
    its workspace moved to another Hub."""

    COMMAND = "command"
    IDLE = "idle"
    MAX_AGE = "max_age"
    HUB = "hub"
    MOVE = "move"


class CullReason(StrEnum):
    """Why the orchestrator culls a server."""

    IDLE = StopReason.IDLE.value
    MAX_AGE = StopReason.MAX_AGE.value


class ServerStarting(EventData):
    """The orchestrator asked the Hub to start the user's server."""

    user: str
    command_id: uuid.UUID | None = None


class ServerReady(EventData):
    """The user's server is ready; ``seconds`` from the start request to ready."""

    user: str
    server_url: str
    seconds: float | None = Field(default=None, ge=0)
    command_id: uuid.UUID | None = None


class ServerSpawnFailed(EventData):
    """The Hub reported that the user's server failed to start."""

    user: str
    reason: str = Field(max_length=1000, description="The Hub's message")
    command_id: uuid.UUID | None = None


class ServerStopping(EventData):
    """The orchestrator is about to stop the user's server."""

    user: str
    reason: StopReason
    command_id: uuid.UUID | None = None


class ServerStopped(EventData):
    """The user's server stopped (``reason: hub`` when found stopped)."""

    user: str
    reason: StopReason
    command_id: uuid.UUID | None = None


class ServerCullScheduled(EventData):
    """The server will be culled at ``deadline`` unless its user is active before."""

    user: str
    reason: CullReason
    deadline: datetime
    last_activity: datetime | None = None
    started_at: datetime | None = None
