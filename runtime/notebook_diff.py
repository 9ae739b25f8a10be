"""Diffs between two versions of a notebook, with nbdime (run in the notebook worker
process, :mod:`runtime.notebook_worker`: nbdime is slow on large outputs and its import
alone takes seconds).

Before diffing, every output larger than :data:`OUTPUT_MAX_BYTES` is replaced by a short
placeholder naming its size and hash (a changed large output still shows as changed), so
the diff is of sources and small outputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from runtime.notebook_changes import cell_changes

OUTPUT_MAX_BYTES = 64 * 1024
PREVIEW_CHARS = 80


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
    cells = []
    for change, i, j in marks:
        shown = small_after["cells"][j] if j is not None else small_before["cells"][i or 0]
        cells.append(
            {
                "change": change.value,
                "before_index": i,
                "after_index": j,
                "preview": _preview(shown),  # the cell as it is now, or as it was if removed
            }
        )
    return {
        "summary": summary.model_dump(),
        "cells": cells,
        "diff": json.loads(json.dumps(diff_notebooks(small_before, small_after))),
        "outputs_stripped": stripped_before + stripped_after,
    }


def _preview(cell: dict[str, Any]) -> str:
    """The first line of a cell's source, at most :data:`PREVIEW_CHARS` characters."""
    source = cell.get("source") or ""
    text = source if isinstance(source, str) else "".join(source)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:PREVIEW_CHARS]
