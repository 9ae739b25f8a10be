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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError
from tornado import web

WAIT_SECONDS = 20.0
PRESENCE_SECONDS = 30.0
DEFAULT_FLUSH_SECONDS = 5.0
MAX_FLUSH_SECONDS = 30.0
AUTH_RESOURCE = "orchestrator_bridge"
PAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass(frozen=True)
class FailedSave:
    """A document a page could not save, and why (as the page words it)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FlushOutcome:
    """What one flush achieved: how many pages it waited for, how many answered."""

    flush: int
    pages: int
    reported: int
    saved: tuple[str, ...]
    failed: tuple[FailedSave, ...]

    def as_json(self) -> dict[str, Any]:
        """The HTTP answer of ``POST flush``."""
        return {
            "flush": self.flush,
            "pages": self.pages,
            "reported": self.reported,
            "saved": list(self.saved),
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
        }


class UnknownFlush(ValueError):
    """A page reported a flush id that was never issued."""


@dataclass
class _PendingFlush:
    id: int
    expected: set[str]
    reporters: set[str] = field(default_factory=set)
    saved: dict[str, None] = field(default_factory=dict)  # ordered set
    failed: dict[FailedSave, None] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        if self.expected <= self.reporters:
            self.complete.set()

    def outcome(self) -> FlushOutcome:
        return FlushOutcome(
            flush=self.id,
            pages=len(self.expected),
            reported=len(self.reporters & self.expected),
            saved=tuple(self.saved),
            failed=tuple(self.failed),
        )


class FlushBoard:
    """Flush ids, the pages waiting for them and their reports; no I/O, one event loop.

    Ids start at 1 and only grow. A report for id N answers every pending flush up to N
    (a page that saved for a newer flush saved for the older ones too). A page that
    reports without having been counted as connected is counted from then on.
    """

    def __init__(
        self,
        *,
        presence_seconds: float = PRESENCE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._presence_seconds = presence_seconds
        self._clock = clock
        self._latest = 0
        self._announced = asyncio.Event()  # set (and replaced) when a flush is created
        self._polling: Counter[str] = Counter()
        self._seen: dict[str, float] = {}
        self._pending: dict[int, _PendingFlush] = {}

    @property
    def latest(self) -> int:
        """The newest flush id (0 before the first flush)."""
        return self._latest

    def connected(self) -> set[str]:
        """Pages with a wait in flight or seen within the presence window."""
        now = self._clock()
        for page, seen in list(self._seen.items()):
            if not self._polling[page] and now - seen > self._presence_seconds:
                del self._seen[page]
                del self._polling[page]
        return set(self._seen)

    async def wait(self, page: str, after: int | None, seconds: float) -> int | None:
        """The newest flush id once one above ``after`` exists, or None after ``seconds``.

        None at once when ``after`` is None (a page that just loaded must not act on old
        requests) or above the latest id (the board is newer than the page: it restarted).
        The page counts as connected while it waits and for the presence window after.
        """
        self._seen[page] = self._clock()
        if after is None or after > self._latest:
            return None
        self._polling[page] += 1
        try:
            deadline = asyncio.get_running_loop().time() + seconds
            while self._latest <= after:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._announced.wait(), remaining)
                except TimeoutError:
                    return None
            return self._latest
        finally:
            self._polling[page] -= 1
            self._seen[page] = self._clock()

    def leave(self, page: str) -> None:
        """Forget a page whose wait was cut off (a closed tab must not hold up a flush).

        A page that was only cut off by the network comes back with its next wait.
        """
        if self._polling[page]:
            return
        self._seen.pop(page, None)
        del self._polling[page]
        for pending in self._pending.values():
            if page not in pending.reporters:
                pending.expected.discard(page)
                pending.settle()

    def report(self, page: str, flush: int, saved: list[str], failed: list[FailedSave]) -> bool:
        """Record what ``page`` saved for ``flush``; True when a flush was waiting for it.

        Raises UnknownFlush for an id that was never issued.
        """
        if not 1 <= flush <= self._latest:
            raise UnknownFlush(f"flush {flush} was never requested (latest is {self._latest})")
        self._seen[page] = self._clock()
        answered = [p for p in self._pending.values() if p.id <= flush]
        for pending in answered:
            pending.expected.add(page)
            pending.reporters.add(page)
            pending.saved.update(dict.fromkeys(saved))
            pending.failed.update(dict.fromkeys(failed))
            pending.settle()
        return bool(answered)

    async def flush(self, seconds: float) -> FlushOutcome:
        """Issue the next flush id, wake the waiting pages and wait for their reports.

        Returns at once when no page is connected, else when every connected page
        reported or ``seconds`` passed, whichever is first.
        """
        self._latest += 1
        pending = _PendingFlush(self._latest, self.connected())
        self._pending[pending.id] = pending
        announced, self._announced = self._announced, asyncio.Event()
        announced.set()
        pending.settle()
        try:
            await asyncio.wait_for(pending.complete.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            del self._pending[pending.id]
        return pending.outcome()


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
