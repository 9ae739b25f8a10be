"""What changed between two versions of a notebook, cell by cell: the short summary
``notebook.saved`` carries, and the per-cell marks the version diff API returns.

Cells are matched by their nbformat ``id`` when both versions give every cell one
(nbformat 4.5); otherwise by their type and source, in order (a longest common
subsequence, :mod:`difflib`). A matched cell whose type, source or outputs differ is
``changed``. This is cheap (hashes, no output rendering) so it runs on every save.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from enum import StrEnum
from typing import Any

from schemas.events import ChangeSummary


class CellChange(StrEnum):
    """What happened to one cell."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


def _cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    cells = notebook.get("cells")
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _digest(cell: dict[str, Any], *, with_outputs: bool) -> str:
    parts: list[Any] = [cell.get("cell_type"), _text(cell.get("source"))]
    if with_outputs:
        parts.append(cell.get("outputs"))
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cell_changes(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[list[tuple[CellChange, int | None, int | None]], ChangeSummary]:
    """Each cell's fate as (change, index in ``before``, index in ``after``), in the
    order of ``after`` with removed cells where they were; and the summary."""
    old, new = _cells(before), _cells(after)
    if old and new and all(c.get("id") for c in old + new):
        pairs = _match_by_id(old, new)
    else:
        pairs = _match_by_content(old, new)
    marks: list[tuple[CellChange, int | None, int | None]] = []
    for i, j in pairs:
        if i is None:
            marks.append((CellChange.ADDED, None, j))
        elif j is None:
            marks.append((CellChange.REMOVED, i, None))
        else:
            same = _digest(old[i], with_outputs=True) == _digest(new[j], with_outputs=True)
            marks.append((CellChange.UNCHANGED if same else CellChange.CHANGED, i, j))
    count = {kind: sum(1 for m in marks if m[0] == kind) for kind in CellChange}
    summary = ChangeSummary(
        cells_added=count[CellChange.ADDED],
        cells_removed=count[CellChange.REMOVED],
        cells_changed=count[CellChange.CHANGED],
    )
    return marks, summary


def _match_by_id(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[tuple[int | None, int | None]]:
    """Pairs by cell id; cells removed before a kept cell come just before it (and
    before cells added there), as a diff shows them."""
    where = {str(c["id"]): i for i, c in enumerate(old)}
    kept = {str(c["id"]) for c in new}
    pairs: list[tuple[int | None, int | None]] = []
    added: list[tuple[int | None, int | None]] = []
    next_old = 0

    def flush(upto: int) -> None:
        nonlocal next_old
        pairs.extend(
            (gone, None) for gone in range(next_old, upto) if str(old[gone]["id"]) not in kept
        )
        next_old = max(next_old, upto)
        pairs.extend(added)
        added.clear()

    for j, cell in enumerate(new):
        i = where.get(str(cell["id"]))
        if i is None:
            added.append((None, j))
            continue
        flush(i)
        next_old = max(next_old, i + 1)
        pairs.append((i, j))
    flush(len(old))
    return pairs


def _match_by_content(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[tuple[int | None, int | None]]:
    """Pairs of cells of the same type and source in order; the rest are replacements
    (paired as changed, one for one) or additions and removals."""
    a = [_digest(c, with_outputs=False) for c in old]
    b = [_digest(c, with_outputs=False) for c in new]
    pairs: list[tuple[int | None, int | None]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs += list(zip(range(i1, i2), range(j1, j2), strict=True))
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        pairs += list(zip(range(i1, i1 + common), range(j1, j1 + common), strict=True))
        pairs += [(i, None) for i in range(i1 + common, i2)]
        pairs += [(None, j) for j in range(j1 + common, j2)]
    return pairs


def summarise(before_text: str | None, after: dict[str, Any]) -> ChangeSummary | None:
    """The summary of ``after`` against the stored JSON ``before_text`` (None when there
    is no earlier version or it does not parse)."""
    if before_text is None:
        return None
    try:
        before = json.loads(before_text)
    except ValueError:
        return None
    if not isinstance(before, dict):
        return None
    return cell_changes(before, after)[1]
