"""Jupyter contents API client for users' servers, reached through the Hub's proxy.

Uses the orchestrator service token (its role holds ``access:servers``), so no
per-user token is minted for a contents call.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import quote

import aiohttp

from consumers.errors import NotFoundError
from consumers.http_edge import JsonApi, RetryPolicy


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
            params=params,
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
