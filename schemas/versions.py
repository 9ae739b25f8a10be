"""How stored notebooks and their versions are described between the layers.

The consumers' ports (``consumers/ports.py``), the gateway's notebook API and the
database adapter (``runtime/db/notebooks.py``) all speak these two records, so they
live below all three.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

JUPYTER_ORIGIN = "jupyter"  # schemas.events.SaveOrigin.JUPYTER


@dataclass(frozen=True)
class StoredVersion:
    """One stored version of a notebook.

    ``origin`` says who wrote it (``schemas.events.SaveOrigin``: ``command``,
    ``create``, ``restore`` or ``jupyter``); ``created`` is False when storing it found
    identical content (or the same command's version) already there, so nothing new
    was written. ``command_id`` and ``app`` name the command that wrote it,
    ``restored_from`` the version a restore wrote back; ``before_overwrite`` marks
    content found unsaved on disk and kept before a restore overwrote it.
    """

    id: uuid.UUID
    user: str
    path: str
    sha256: str
    size: int
    origin: str
    created_at: datetime
    created: bool
    command_id: uuid.UUID | None = None
    app: str | None = None
    restored_from: uuid.UUID | None = None
    before_overwrite: bool = False

    @property
    def writing_command(self) -> uuid.UUID | None:
        """The command that wrote it; None for a save made inside Jupyter (whose
        ``command_id`` holds the save report's id, for idempotency only)."""
        return None if self.origin == JUPYTER_ORIGIN else self.command_id


@dataclass(frozen=True)
class NotebookSummary:
    """A notebook the orchestrator tracks, with its latest version id.

    ``deleted`` notebooks keep their versions (deleted inside Jupyter, restorable).
    """

    user: str
    path: str
    latest_version_id: uuid.UUID | None
    updated_at: datetime
    deleted: bool
