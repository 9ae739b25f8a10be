"""The cell-by-cell comparison behind notebook.saved's change summary and the diff view."""

from __future__ import annotations

import json
from typing import Any

from runtime.notebook_changes import CellChange, cell_changes, summarise
from schemas.events import ChangeSummary


def notebook(
    *cells: tuple[str, str] | tuple[str, str, list[Any]], ids: bool = True
) -> dict[str, Any]:
    """A notebook of code cells given as (id, source) or (id, source, outputs)."""
    made = []
    for cell in cells:
        body: dict[str, Any] = {
            "cell_type": "code",
            "source": cell[1],
            "metadata": {},
            "outputs": cell[2] if len(cell) == 3 else [],
            "execution_count": None,
        }
        if ids:
            body["id"] = cell[0]
        made.append(body)
    return {"cells": made, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_cells_matched_by_id_show_added_removed_and_changed_in_order() -> None:
    before = notebook(("a", "x = 1"), ("b", "y = 2"), ("c", "z = 3"))
    after = notebook(("a", "x = 1"), ("n", "new"), ("c", "z = 30"))
    marks, summary = cell_changes(before, after)
    assert [m[0] for m in marks] == [
        CellChange.UNCHANGED,
        CellChange.REMOVED,  # b stood between a and c
        CellChange.ADDED,
        CellChange.CHANGED,
    ]
    assert [(m[1], m[2]) for m in marks] == [(0, 0), (1, None), (None, 1), (2, 2)]
    assert summary == ChangeSummary(cells_added=1, cells_removed=1, cells_changed=1)


def test_a_new_output_changes_a_cell_and_a_move_changes_nothing() -> None:
    out = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    before = notebook(("a", "print(1)"), ("b", "y"))
    assert cell_changes(before, notebook(("a", "print(1)", out), ("b", "y")))[1] == ChangeSummary(
        cells_added=0, cells_removed=0, cells_changed=1
    )
    moved = cell_changes(before, notebook(("b", "y"), ("a", "print(1)")))[1]
    assert (moved.cells_added, moved.cells_removed, moved.cells_changed) == (0, 0, 0)


def test_without_ids_cells_are_matched_by_content_in_order() -> None:
    before = notebook(("", "a"), ("", "b"), ("", "c"), ids=False)
    after = notebook(("", "a"), ("", "B"), ("", "c"), ("", "d"), ids=False)
    marks, summary = cell_changes(before, after)
    assert [m[0] for m in marks] == [
        CellChange.UNCHANGED,
        CellChange.CHANGED,  # b replaced by B, one for one
        CellChange.UNCHANGED,
        CellChange.ADDED,
    ]
    assert summary == ChangeSummary(cells_added=1, cells_removed=0, cells_changed=1)


def test_no_earlier_version_or_an_unreadable_one_gives_no_summary() -> None:
    after = notebook(("a", "x"))
    assert summarise(None, after) is None
    assert summarise("not json", after) is None
    assert summarise(json.dumps([1]), after) is None
    assert summarise(json.dumps(notebook()), after) == ChangeSummary(
        cells_added=1, cells_removed=0, cells_changed=0
    )
