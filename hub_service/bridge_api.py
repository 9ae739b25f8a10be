"""The flush bridge: the orchestrator asks every open JupyterLab page to save its edits.

Before a server is culled, the unsaved edits held by its browser pages must reach the
disk. Each page (the embed-bridge labextension) long-polls this server; the orchestrator
posts a flush, the pages save their dirty documents and report back. Endpoints, under
``{base_url}orchestrator/bridge/`` (JSON in and out; errors are 400 with
``{"message": ...}`` naming the problem):

``GET wait?page=<id>[&after=<int>]``
    Without ``after`` (or with one newer than the latest id, i.e. the server
    restarted) answers at once ``{"flush": null, "current": <latest id>}``: a page that
    just loaded must not act on old requests. Otherwise answers ``{"flush": <id>}`` as
    soon as a flush with an id above ``after`` exists, or ``{"flush": null, "current":
    <latest id>}`` after about 20 s.
``POST done`` with ``{"page": <id>, "flush": <id>, "saved": [path, ...], "failed":
[{"path": ..., "reason": ...}, ...]}``
    The page saved what it could for that flush; answers ``{"flush": <id>,
    "accepted": <a flush was still waiting for it>}``.
``POST flush[?timeout=<seconds, 0..30, default 5>]``
    Creates the next flush id, wakes the waiting pages and waits until every connected
    page reported or the timeout passed; answers ``{"flush": <id>, "pages": <connected>,
    "reported": <reported>, "saved": [...], "failed": [...]}``.

A page id is chosen by the page (8 to 64 characters of ``A-Z a-z 0-9 _ -``). A page is
connected while its ``wait`` is in flight or was seen in the last 30 s. No endpoint
counts as user activity (``_track_activity = False``): polling pages and the
orchestrator's flush must not keep an idle server alive. Authentication is
jupyter_server's own: the page's session, or a Hub token with access to this server.
Like the rest of the extension, this module imports nothing of the project beyond
``hub_service`` and ``schemas`` (all that the single-user servers are given).
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError
from tornado import web

from hub_service.flush_board import FailedSave, FlushBoard, UnknownFlush

WAIT_SECONDS = 20.0
DEFAULT_FLUSH_SECONDS = 5.0
MAX_FLUSH_SECONDS = 30.0
AUTH_RESOURCE = "orchestrator_bridge"
PAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
PageId = Annotated[str, StringConstraints(strict=True, pattern=PAGE_ID.pattern)]
DocumentPath = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=4096)]


class _FailedBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: DocumentPath
    reason: Annotated[str, StringConstraints(strict=True, max_length=2000)]


class _DoneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: PageId
    flush: StrictInt
    saved: list[DocumentPath] = Field(default_factory=list, max_length=10_000)
    failed: list[_FailedBody] = Field(default_factory=list, max_length=10_000)


def _bad_request(message: str) -> web.HTTPError:
    return web.HTTPError(400, message.replace("%", "%%"), reason="Bad Request")


class _BridgeHandler(APIHandler):
    """Common ground: the shared board, the auth resource, and no activity tracking."""

    auth_resource = AUTH_RESOURCE
    _track_activity = False

    def initialize(self, board: FlushBoard) -> None:
        """Tornado passes the board given at registration."""
        self.board = board

    def _int_argument(self, name: str) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return None
        if not re.fullmatch(r"[0-9]{1,15}", raw):
            raise _bad_request(f"'{name}' must be a non-negative integer")
        return int(raw)


class WaitHandler(_BridgeHandler):
    """``GET wait``: the pages' long poll."""

    _waiting: asyncio.Future[int | None] | None = None
    _cut_off = False

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Answer with the next flush id, or with the current id (see the module doc)."""
        page = self.get_query_argument("page", "")
        if not PAGE_ID.fullmatch(page):
            raise _bad_request("'page' must be 8 to 64 characters of A-Z a-z 0-9 _ -")
        after = self._int_argument("after")
        self._waiting = asyncio.ensure_future(self.board.wait(page, after, WAIT_SECONDS))
        try:
            flush = await self._waiting
        except asyncio.CancelledError:
            if not self._cut_off:
                raise
            self.board.leave(page)
            return
        if flush is None:
            self.finish({"flush": None, "current": self.board.latest})
        else:
            self.finish({"flush": flush})

    def on_connection_close(self) -> None:
        """The page went away mid-poll: stop waiting for it and forget it."""
        self._cut_off = True
        if self._waiting is not None:
            self._waiting.cancel()
        super().on_connection_close()


class DoneHandler(_BridgeHandler):
    """``POST done``: a page's report of what it saved."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Validate and record the report."""
        try:
            body = _DoneBody.model_validate_json(self.request.body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            raise _bad_request(f"invalid report: {problems}") from None
        failed = [FailedSave(path=f.path, reason=f.reason) for f in body.failed]
        try:
            accepted = self.board.report(body.page, body.flush, body.saved, failed)
        except UnknownFlush as exc:
            raise _bad_request(str(exc)) from None
        self.finish({"flush": body.flush, "accepted": accepted})


class FlushHandler(_BridgeHandler):
    """``POST flush``: the orchestrator's request that every open page save."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Flush and answer with the outcome once the pages reported or time ran out."""
        raw = self.get_query_argument("timeout", None)
        timeout = DEFAULT_FLUSH_SECONDS
        if raw is not None:
            try:
                timeout = float(raw)
            except ValueError:
                timeout = -1.0
            if not 0 <= timeout <= MAX_FLUSH_SECONDS:  # also refuses NaN
                raise _bad_request(
                    f"'timeout' must be a number of seconds from 0 to {MAX_FLUSH_SECONDS:g}"
                )
        outcome = await self.board.flush(timeout)
        self.finish(outcome.as_json())


def bridge_handlers(
    base_url: str, board: FlushBoard
) -> list[tuple[str, type[APIHandler], dict[str, Any]]]:
    """The URL rules of the bridge under ``base_url``, all sharing ``board``."""
    prefix = url_path_join(base_url, "orchestrator", "bridge")
    kwargs = {"board": board}
    return [
        (url_path_join(prefix, "wait"), WaitHandler, kwargs),
        (url_path_join(prefix, "done"), DoneHandler, kwargs),
        (url_path_join(prefix, "flush"), FlushHandler, kwargs),
    ]
