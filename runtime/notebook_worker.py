"""Heavy notebook work (diffs with nbdime, HTML with nbconvert) in a worker process.

Both libraries take seconds to import and can take long on large notebooks, so this
work never runs in a server's event loop: :class:`NotebookWorker` keeps one child
process (``python -m runtime.notebook_worker``) that imports them once and answers one
request at a time over its standard input and output (a JSON line each way). A request
that takes longer than the limit ends that process (killed by PID) and the next
request starts a fresh one; notebooks above :data:`NOTEBOOK_MAX_BYTES` are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

NOTEBOOK_MAX_BYTES = 20 * 1024 * 1024
WORK_TIMEOUT_SECONDS = 20.0
START_TIMEOUT_SECONDS = 120.0
READY = b"ready"
_LINE_LIMIT = 3 * NOTEBOOK_MAX_BYTES  # one answer: an HTML page or a diff, as JSON


class NotebookTooLarge(Exception):
    """A notebook is larger than :data:`NOTEBOOK_MAX_BYTES`."""


class WorkTooSlow(Exception):
    """The work took longer than the worker's time limit."""


class NotebookWorker:
    """One worker process, one request at a time (see the module docstring)."""

    def __init__(self, *, timeout_seconds: float = WORK_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def diff(self, before_text: str, after_text: str) -> dict[str, Any]:
        """The diff of two notebook texts (:func:`runtime.notebook_diff.compute_diff`)."""
        result: dict[str, Any] = await self._ask("diff", before=before_text, after=after_text)
        return result

    async def render(self, notebook_text: str) -> str:
        """The read-only HTML page of a notebook text (:mod:`runtime.notebook_render`)."""
        return str(await self._ask("render", notebook=notebook_text))

    async def _ask(self, op: str, **notebooks: str) -> Any:
        """Send one request; raises :class:`NotebookTooLarge` or :class:`WorkTooSlow`."""
        if max(len(text) for text in notebooks.values()) > NOTEBOOK_MAX_BYTES:
            raise NotebookTooLarge(f"notebooks over {NOTEBOOK_MAX_BYTES} bytes are refused")
        request = json.dumps({"op": op, **notebooks}).encode() + b"\n"
        async with self._lock:
            process = await self._started()
            assert process.stdin is not None and process.stdout is not None
            try:
                async with asyncio.timeout(self._timeout):
                    process.stdin.write(request)
                    await process.stdin.drain()
                    answer = await process.stdout.readline()
            except TimeoutError:
                await self._end()
                raise WorkTooSlow(f"the {op} took longer than {self._timeout:g} s") from None
            if not answer:
                await self._end()
                raise RuntimeError("the notebook worker exited")
        reply: dict[str, Any] = json.loads(answer)
        if "error" in reply:
            raise ValueError(reply["error"])
        return reply["result"]

    async def start(self) -> None:
        """Start the worker now rather than at the first request (it imports a lot)."""
        async with self._lock:
            await self._started()

    @property
    def pid(self) -> int | None:
        """The worker process's PID while one runs."""
        return None if self._process is None else self._process.pid

    async def _started(self) -> asyncio.subprocess.Process:
        """The worker, started if need be and once it said it is ready (its imports take
        seconds, and do not count against a request's time limit)."""
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "runtime.notebook_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
            )
            assert self._process.stdout is not None
            try:
                async with asyncio.timeout(START_TIMEOUT_SECONDS):
                    ready = await self._process.stdout.readline()
            except TimeoutError:
                ready = b""
            if ready.strip() != READY:
                await self._end()
                raise RuntimeError("the notebook worker did not start")
        return self._process

    async def _end(self) -> None:
        """Kill the worker this object started (by PID) and reap it."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def close(self) -> None:
        """End the worker, if one runs."""
        async with self._lock:
            await self._end()


def _perform(request: dict[str, Any]) -> Any:
    from runtime.notebook_diff import compute_diff
    from runtime.notebook_render import render_html

    if request["op"] == "diff":
        return compute_diff(request["before"], request["after"])
    if request["op"] == "render":
        return render_html(request["notebook"])
    raise ValueError(f"unknown op {request['op']!r}")


def _serve() -> None:
    """The worker's loop: one JSON request per line in, one JSON answer per line out."""
    import nbconvert  # noqa: F401  (warm: the first request should not pay the imports)
    import nbdime  # noqa: F401

    sys.stdout.write(READY.decode() + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"result": _perform(json.loads(line))}
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
