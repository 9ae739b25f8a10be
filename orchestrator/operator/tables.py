"""How operator verbs print what they found: a table for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def cell(value: Any) -> str:
    """A value as one table cell: line breaks (a multi-line dead-letter reason) become
    ``⏎`` so that every row stays one line."""
    return " ⏎ ".join(part.strip() for part in str(value).splitlines())


def print_rows(rows: Sequence[dict[str, Any]], *, as_json: bool) -> None:
    """Print rows as a human table (one line per row), or as JSON for scripts."""
    if as_json:
        print(json.dumps(list(rows), indent=2, default=str))
        return
    if not rows:
        print("(none)")
        return
    columns = list(rows[0].keys())
    cells = [{c: cell(r.get(c, "")) for c in columns} for r in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in cells:
        print("  ".join(row[c].ljust(widths[c]) for c in columns))
