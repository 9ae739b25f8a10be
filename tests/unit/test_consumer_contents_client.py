"""ContentsClient through the shared JSON edge, against an in-process contents API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consumers.contents_client import ContentsClient
from consumers.errors import NotFoundError, PermanentError
from consumers.http_edge import RetryPolicy


@dataclass
class StandInContents:
    """The Jupyter contents API of one user's server, as reached through the Hub proxy."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    unavailable_first: int = 0
    tokens: set[str] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/user/{name}/api/contents/{path:.*}", self.contents)
        return app

    async def contents(self, request: web.Request) -> web.Response:
        self.tokens.add(request.headers.get("Authorization", ""))
        if self.unavailable_first > 0:
            self.unavailable_first -= 1
            return web.json_response({"message": "proxy starting"}, status=503)
        path = request.match_info["path"]
        if request.method == "PUT":
            model = await request.json()
            if model["type"] == "notebook" and "/" in path:
                return web.json_response({"message": "bad path"}, status=400)
            created = path not in self.files
            self.files[path] = model
            return web.json_response({"path": path}, status=201 if created else 200)
        if path not in self.files:
            return web.json_response({"message": f"No such file: {path}"}, status=404)
        if request.query.get("content") == "0":
            return web.json_response({"path": path, "content": None})
        return web.json_response({"path": path, **self.files[path]})


@pytest.fixture
async def contents() -> AsyncIterator[tuple[StandInContents, ContentsClient]]:
    stand_in = StandInContents()
    server = TestServer(stand_in.app())
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        retry = RetryPolicy(max_wait=0.01, target="contents")
        yield stand_in, ContentsClient(session, str(server.make_url("/")), "tok", retry=retry)
    await server.close()


async def test_written_notebook_reads_back_with_the_service_token(
    contents: tuple[StandInContents, ContentsClient],
) -> None:
    stand_in, client = contents
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    assert not await client.exists("ann", "a.ipynb")
    await client.write_notebook("ann", "a.ipynb", notebook)
    assert await client.exists("ann", "a.ipynb")
    assert await client.read_notebook("ann", "a.ipynb") == notebook
    assert stand_in.tokens == {"token tok"}


async def test_missing_notebook_is_not_found_and_a_refusal_is_permanent(
    contents: tuple[StandInContents, ContentsClient],
) -> None:
    _, client = contents
    with pytest.raises(NotFoundError, match=r"GET contents of ann:b\.ipynb: HTTP 404"):
        await client.read_notebook("ann", "b.ipynb")
    with pytest.raises(PermanentError, match="HTTP 400: bad path"):
        await client.write_notebook("ann", "x/b.ipynb", {})


async def test_transient_errors_are_retried(
    contents: tuple[StandInContents, ContentsClient],
) -> None:
    stand_in, client = contents
    stand_in.unavailable_first = 2
    await client.ensure_folder("ann", "work/2026")
    assert stand_in.files == {
        "work": {"type": "directory"},
        "work/2026": {"type": "directory"},
    }
