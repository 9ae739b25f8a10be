"""What the consumer tests use to drive a real stack: send commands as an app, look at
the user's files as Jupyter has them, and read stored versions from the database."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp

from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.notebooks import NotebookStore
from runtime.db.workspaces import WorkspaceStore
from schemas.versions import StoredVersion
from schemas.workspaces import Workspace, workspace_name

FINAL = {"succeeded", "failed", "rejected"}


class CommandClient:
    """An app talking to the gateway: submit commands and wait for their outcome."""

    def __init__(self, http: aiohttp.ClientSession, gateway_url: str, app_key: str) -> None:
        self._http = http
        self._base = gateway_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {app_key}"}

    async def submit(self, command: dict[str, Any]) -> str:
        """POST the command; returns its id (asserts 202)."""
        async with self._http.post(
            f"{self._base}/v1/commands", json=command, headers=self._auth
        ) as response:
            assert response.status == 202, await response.text()
            command_id: str = (await response.json())["id"]
            return command_id

    async def status(self, command_id: str, wait: float = 0) -> dict[str, Any]:
        """The command's current view (long-polling up to ``wait`` seconds)."""
        async with self._http.get(
            f"{self._base}/v1/commands/{command_id}?wait={wait}", headers=self._auth
        ) as response:
            assert response.status == 200, await response.text()
            view: dict[str, Any] = await response.json()
            return view

    async def wait(self, command_id: str, within: float = 180) -> dict[str, Any]:
        """Wait (long-poll, no sleeps) until the command is final; fail after ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            view = await self.status(
                command_id, wait=min(25.0, max(0.1, deadline - time.monotonic()))
            )
            if view["status"] in FINAL:
                return view
            assert time.monotonic() < deadline, f"command not final after {within} s: {view}"

    async def run(self, command: dict[str, Any], within: float = 180) -> dict[str, Any]:
        """Submit and wait."""
        return await self.wait(await self.submit(command), within)

    async def succeed(self, command: dict[str, Any], within: float = 180) -> dict[str, Any]:
        """Submit, wait, assert it succeeded; returns its result."""
        view = await self.run(command, within)
        assert view["status"] == "succeeded", view
        result: dict[str, Any] = view["result"]
        return result


class JupyterFiles:
    """A user's files in ``app``'s workspace as its server has them (contents API with
    the service token). Methods take the person's name, as commands do."""

    def __init__(self, http: aiohttp.ClientSession, hub_url: str, token: str, *, app: str) -> None:
        self._http = http
        self._base = hub_url.rstrip("/")
        self._auth = {"Authorization": f"token {token}"}
        self._app = app

    def hub_user(self, user: str) -> str:
        """The Hub user of ``user``'s workspace in this app."""
        return workspace_name(self._app, user)

    def _url(self, user: str, path: str) -> str:
        return f"{self._base}/user/{quote(self.hub_user(user))}/api/contents/{quote(path)}"

    async def read(self, user: str, path: str) -> dict[str, Any] | None:
        """The notebook model at ``path`` (content included), or None if absent."""
        async with self._http.get(
            self._url(user, path), params={"content": "1"}, headers=self._auth
        ) as response:
            if response.status == 404:
                return None
            assert response.status == 200, await response.text()
            model: dict[str, Any] = await response.json()
            return model

    async def write(self, user: str, path: str, content: dict[str, Any]) -> None:
        """Save ``content`` at ``path`` as a user editing in Jupyter would."""
        body = {"type": "notebook", "format": "json", "content": content}
        async with self._http.put(self._url(user, path), json=body, headers=self._auth) as r:
            assert r.status in (200, 201), await r.text()

    async def rename(self, user: str, path: str, new_path: str) -> None:
        """Rename ``path`` to ``new_path`` as the file browser does."""
        async with self._http.patch(
            self._url(user, path), json={"path": new_path}, headers=self._auth
        ) as response:
            assert response.status == 200, await response.text()

    async def delete(self, user: str, path: str) -> None:
        """Delete ``path``."""
        async with self._http.delete(self._url(user, path), headers=self._auth) as r:
            assert r.status == 204, await r.text()

    async def server(self, user: str) -> dict[str, Any] | None:
        """The user's default server as the Hub reports it (None: no server or no user)."""
        async with self._http.get(
            f"{self._base}/hub/api/users/{quote(self.hub_user(user))}", headers=self._auth
        ) as response:
            if response.status == 404:
                return None
            assert response.status == 200, await response.text()
            server: dict[str, Any] | None = (await response.json())["servers"].get("")
            return server


def notebook_with(source: str) -> dict[str, Any]:
    """An nbformat 4.5 notebook with one code cell."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {
                "id": "c1",
                "cell_type": "code",
                "source": source,
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
        ],
    }


def cell_sources(model: dict[str, Any] | None) -> list[str]:
    """The cell sources of a contents model."""
    assert model is not None, "the notebook does not exist"
    return [cell["source"] for cell in model["content"]["cells"]]


@asynccontextmanager
async def version_store(database_url: str) -> AsyncIterator[NotebookStore]:
    """The stack's notebook store (read straight from its database)."""
    engine = make_engine(database_url)
    try:
        yield NotebookStore(make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def versions_of(database_url: str, user: str, path: str, *, app: str) -> list[StoredVersion]:
    """Stored versions of one notebook of ``user`` in ``app``, newest first."""
    async with version_store(database_url) as store:
        return await store.versions(workspace_name(app, user), path)


async def register_workspace(database_url: str, app: str, user: str) -> Workspace:
    """Record ``user``'s workspace in ``app`` as a command would (for tests that drive
    the Hub directly and expect the orchestrator to know whose workspace it is)."""
    engine = make_engine(database_url)
    try:
        return await WorkspaceStore(make_sessionmaker(engine)).ensure(app, user)
    finally:
        await engine.dispose()
