"""Jupyter server API client for users' servers, reached through the Hub's proxy.

Uses the orchestrator service token (its role holds ``access:servers``), so no
per-user token is minted for a contents call. Every request carries
``no_track_activity``: jupyter_server then leaves the server's ``last_activity``
alone, so the orchestrator's own calls never keep an idle server from being culled.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from consumers.errors import NotFoundError
from consumers.http_edge import JsonApi, RetryPolicy
from consumers.ports import FlushReport

# jupyter_server's APIHandler does not count a request carrying this as activity.
UNTRACKED = {"no_track_activity": "1"}


class ContentsClient:
    """Read and write notebooks and folders in a user's server."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        hub_public_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api = JsonApi(
            session,
            hub_public_url,
            token,
            retry=retry or RetryPolicy(target="contents"),
            allow_redirects=False,
        )

    async def _call(
        self,
        method: str,
        user: str,
        path: str,
        *,
        ok: tuple[int, ...],
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        return await self._api.request(
            method,
            f"/user/{quote(user)}/api/contents/{quote(path)}",
            endpoint="/user/{name}/api/contents",
            ok=ok,
            what=f"{method} contents of {user}:{path or '/'}",
            body=body,
            params={**(params or {}), **UNTRACKED},
        )

    async def _server(
        self,
        method: str,
        user: str,
        route: str,
        what: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Call ``route`` of the user's server (untracked); None when it answers 404
        (no server, or no such endpoint)."""
        try:
            _, answer = await self._api.request(
                method,
                f"/user/{quote(user)}/{route}",
                endpoint=f"/user/{{name}}/{route}",
                ok=(200,),
                what=f"{what} of {user}'s server",
                body=body,
                params={**(params or {}), **UNTRACKED},
            )
        except NotFoundError:
            return None
        return answer

    async def last_activity(self, user: str) -> datetime | None:
        """The server's own ``last_activity`` (``GET /api/status``): its user's last API
        request, kernel or terminal activity; None if the server does not answer."""
        raw = ((await self._server("GET", user, "api/status", "status")) or {}).get("last_activity")
        return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None

    async def open_notebooks(self, user: str) -> list[str]:
        """Paths of the notebooks that have a kernel session (``GET /api/sessions``)."""
        sessions = await self._server("GET", user, "api/sessions", "sessions") or []
        return sorted(
            {
                str(s.get("path", "")).lstrip("/")
                for s in sessions
                if s.get("type", "notebook") == "notebook" and s.get("path")
            }
        )

    async def flush_pages(self, user: str, timeout_seconds: float) -> FlushReport:
        """Ask every JupyterLab page open on the server to save its unsaved notebooks
        (the embed bridge), waiting up to ``timeout_seconds`` for them to report."""
        answer = await self._server(
            "POST",
            user,
            "orchestrator/bridge/flush",
            "flush of the open pages",
            body={},
            params={"timeout": f"{timeout_seconds:g}"},
        )
        report = answer or {}  # None: a server without the bridge
        return FlushReport(
            pages=int(report.get("pages", 0)),
            reported=int(report.get("reported", 0)),
            saved=tuple(str(p).lstrip("/") for p in report.get("saved", [])),
        )

    async def ensure_folder(self, user: str, folder: str) -> None:
        """Create ``folder`` and its parents (PUT directory is idempotent)."""
        parts = [p for p in folder.split("/") if p]
        for i in range(1, len(parts) + 1):
            await self._call(
                "PUT", user, "/".join(parts[:i]), ok=(200, 201), body={"type": "directory"}
            )

    async def ensure_parent(self, user: str, path: str) -> None:
        """Create the folder a file at ``path`` lives in."""
        parent = posixpath.dirname(path)
        if parent:
            await self.ensure_folder(user, parent)

    async def exists(self, user: str, path: str) -> bool:
        """True if ``path`` exists in the user's server."""
        try:
            await self._call("GET", user, path, ok=(200,), params={"content": "0"})
        except NotFoundError:
            return False
        return True

    async def list_notebooks(self, user: str) -> list[str]:
        """Paths of every notebook in the user's server, in every folder (what the
        contents API shows: hidden files and folders are not listed), sorted."""
        found: list[str] = []
        folders = [""]
        while folders:
            folder = folders.pop()
            _, model = await self._call("GET", user, folder, ok=(200,), params={"content": "1"})
            for entry in model.get("content") or []:
                if entry.get("type") == "directory":
                    folders.append(str(entry["path"]))
                elif entry.get("type") == "notebook":
                    found.append(str(entry["path"]).lstrip("/"))
        return sorted(found)

    async def read_notebook(self, user: str, path: str) -> dict[str, Any]:
        """The nbformat document at ``path`` (NotFoundError if absent)."""
        _, model = await self._call(
            "GET", user, path, ok=(200,), params={"content": "1", "type": "notebook"}
        )
        content: dict[str, Any] = model["content"]
        return content

    async def write_notebook(self, user: str, path: str, content: dict[str, Any]) -> None:
        """Write an nbformat document at ``path`` (the ``format: json`` variant)."""
        await self._call(
            "PUT",
            user,
            path,
            ok=(200, 201),
            body={"type": "notebook", "format": "json", "content": content},
        )

    async def new_untitled(self, user: str, folder: str) -> str:
        """Create an untitled notebook in ``folder``; returns its path."""
        _, model = await self._call("POST", user, folder, ok=(201,), body={"type": "notebook"})
        path: str = model["path"]
        return path
