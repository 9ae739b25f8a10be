"""Workspaces: the Hub user that holds one person's notebooks for one app.

Apps are tenants. The same person (``user`` in a command) gets a separate workspace
in each app: a Hub user of its own, so a separate server, home folder and browser
session, and the Hub itself keeps one app's session away from another app's files.
The name is derived from the app and the person, so every process computes it alike;
the database records each workspace's owner for the way back (hub user → app, person).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

PERSON_PART_CHARS = 20
DIGEST_CHARS = 10


def workspace_name(app: str, user: str) -> str:
    """The Hub user name of ``user``'s workspace in ``app``: ``{user[:20]}-{10 hex}``.

    At most 31 characters of ``[a-z0-9._-]`` starting with a letter or digit: a valid
    JupyterHub name and a valid system account name. The digest covers the whole app
    and user names, so two apps (or two long names) never share a workspace.
    """
    digest = hashlib.sha256(f"{app}\0{user}".encode()).hexdigest()[:DIGEST_CHARS]
    return f"{user[:PERSON_PART_CHARS]}-{digest}"


@dataclass(frozen=True)
class Workspace:
    """Whose workspace a Hub user is: ``user`` (the person) in ``app``, and the Hub it
    lives on (None where no Hub was given)."""

    name: str
    app: str
    user: str
    hub: str | None = None


class MoveStep(StrEnum):
    """How far a workspace's move to another Hub got (each step durable before the next)."""

    STARTED = "started"
    LEFT_SOURCE = "left_source"  # its notebooks stored as versions, its server stopped
    WRITTEN = "written"  # the latest versions written on the target Hub
    DONE = "done"  # the workspace lives on the target Hub
