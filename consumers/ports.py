"""Ports the command handlers depend on; adapters (Hub, contents, DB) implement them."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from consumers.hub_client import ServerState
from runtime.db.notebooks import NotebookSummary, StoredVersion


class HubPort(Protocol):
    """Users and servers on the Hub."""

    async def server_state(self, user: str) -> ServerState: ...
    async def ensure_user(self, user: str) -> bool: ...
    async def start_server(self, user: str, known: ServerState | None = None) -> str: ...
    async def stop_server(self, user: str) -> bool: ...


class NotebookReader(Protocol):
    """Reads files in a user's server."""

    async def exists(self, user: str, path: str) -> bool: ...
    async def read_notebook(self, user: str, path: str) -> dict[str, Any]: ...


class ContentsPort(NotebookReader, Protocol):
    """Files in a user's server."""

    async def ensure_folder(self, user: str, folder: str) -> None: ...
    async def ensure_parent(self, user: str, path: str) -> None: ...
    async def write_notebook(self, user: str, path: str, content: dict[str, Any]) -> None: ...
    async def new_untitled(self, user: str, folder: str) -> str: ...


class VersionWriter(Protocol):
    """Adds notebook versions."""

    async def add_version(
        self,
        *,
        user: str,
        path: str,
        content: str,
        sha256: str,
        origin: str,
        command_id: uuid.UUID | None = None,
    ) -> StoredVersion: ...


class VersionStore(VersionWriter, Protocol):
    """Stored notebook versions."""

    async def latest(self, user: str, path: str) -> StoredVersion | None: ...
    async def version(self, version_id: uuid.UUID) -> StoredVersion | None: ...
    async def content(self, sha256: str) -> str | None: ...


class NotebookIndex(VersionWriter, Protocol):
    """The notebooks the orchestrator keeps, as saves made inside Jupyter change them."""

    async def rename(self, user: str, old_path: str, new_path: str) -> bool: ...
    async def mark_deleted(self, user: str, path: str) -> bool: ...
    async def notebooks(self, user: str) -> list[NotebookSummary]: ...
