"""Diffs between two versions of a notebook, computed with nbdime in a worker process.

nbdime is slow on large outputs and its import alone takes seconds, so a diff never runs
in a server's event loop: :class:`DiffWorker` keeps one child process (``python -m
runtime.notebook_diff``) that imports nbdime once and answers one request at a time over
its standard input and output. A diff that takes longer than the limit ends that
process (killed by PID) and the next request starts a fresh one. Before diffing, every
output larger than :data:`OUTPUT_MAX_BYTES` is replaced by a short placeholder naming
its size and hash (a changed large output still shows as changed), so the diff is of
sources and small outputs; notebooks above :data:`DIFF_MAX_BYTES` are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
from typing import Any

from runtime.notebook_changes import cell_changes

OUTPUT_MAX_BYTES = 64 * 1024
DIFF_MAX_BYTES = 20 * 1024 * 1024
DIFF_TIMEOUT_SECONDS = 20.0
START_TIMEOUT_SECONDS = 120.0
READY = b"ready"
_LINE_LIMIT = 2 * DIFF_MAX_BYTES + 1024 * 1024  # one request: two notebooks as JSON


class DiffTooLarge(Exception):
    """A notebook is larger than :data:`DIFF_MAX_BYTES`."""


class DiffTooSlow(Exception):
    """The diff took longer than the worker's time limit."""


def strip_large_outputs(notebook: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``notebook`` with every output over :data:`OUTPUT_MAX_BYTES` replaced by a
    placeholder stream output (size and sha256); and how many were replaced."""
    stripped = 0
    cells = []
    for cell in notebook.get("cells") or []:
        outputs = []
        for output in cell.get("outputs") or []:
            raw = json.dumps(output, sort_keys=True).encode()
            if len(raw) <= OUTPUT_MAX_BYTES:
                outputs.append(output)
                continue
            stripped += 1
            digest = hashlib.sha256(raw).hexdigest()
            outputs.append(
                {
                    "output_type": "stream",
                    "name": "stdout",
                    "text": f"[output of {len(raw)} bytes, sha256 {digest}, not compared in full]",
                }
            )
        cells.append({**cell, "outputs": outputs} if "outputs" in cell else cell)
    return {**notebook, "cells": cells}, stripped


def compute_diff(before_text: str, after_text: str) -> dict[str, Any]:
    """The diff of two notebooks' JSON texts (run in the worker): nbdime's diff of the
    notebooks with large outputs stripped, each cell's fate and the change summary."""
    import nbformat
    from nbdime import diff_notebooks  # imported once per worker process

    # nbformat's reader joins the sources stored as lists of lines, as nbdime expects
    before = nbformat.reads(before_text, as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
    after = nbformat.reads(after_text, as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
    small_before, stripped_before = strip_large_outputs(before)
    small_after, stripped_after = strip_large_outputs(after)
    small_before = nbformat.from_dict(small_before)  # type: ignore[no-untyped-call]
    small_after = nbformat.from_dict(small_after)  # type: ignore[no-untyped-call]
    marks, summary = cell_changes(small_before, small_after)
    return {
        "summary": summary.model_dump(),
        "cells": [
            {"change": change.value, "before_index": i, "after_index": j} for change, i, j in marks
        ],
        "diff": json.loads(json.dumps(diff_notebooks(small_before, small_after))),
        "outputs_stripped": stripped_before + stripped_after,
    }


class DiffWorker:
    """One worker process computing diffs, one at a time (see the module docstring)."""

    def __init__(self, *, timeout_seconds: float = DIFF_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def diff(self, before_text: str, after_text: str) -> dict[str, Any]:
        """The diff of two notebook texts (:func:`compute_diff`); raises
        :class:`DiffTooLarge` or :class:`DiffTooSlow`."""
        if max(len(before_text), len(after_text)) > DIFF_MAX_BYTES:
            raise DiffTooLarge(f"notebooks over {DIFF_MAX_BYTES} bytes are not diffed")
        request = json.dumps({"before": before_text, "after": after_text}).encode() + b"\n"
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
                raise DiffTooSlow(f"the diff took longer than {self._timeout:g} s") from None
            if not answer:
                await self._end()
                raise RuntimeError("the diff worker exited")
        reply: dict[str, Any] = json.loads(answer)
        if "error" in reply:
            raise ValueError(reply["error"])
        result: dict[str, Any] = reply["result"]
        return result

    async def start(self) -> None:
        """Start the worker now rather than at the first diff (it imports nbdime)."""
        async with self._lock:
            await self._started()

    @property
    def pid(self) -> int | None:
        """The worker process's PID while one runs."""
        return None if self._process is None else self._process.pid

    async def _started(self) -> asyncio.subprocess.Process:
        """The worker, started if need be and once it said it is ready (nbdime imported:
        that takes seconds, and does not count against a diff's time limit)."""
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "runtime.notebook_diff",
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
                raise RuntimeError("the diff worker did not start")
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


def _serve() -> None:
    """The worker's loop: one JSON request per line in, one JSON answer per line out."""
    import nbdime  # noqa: F401  (warm: the first request should not pay the import)

    sys.stdout.write(READY.decode() + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer: dict[str, Any] = {"result": compute_diff(request["before"], request["after"])}
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
