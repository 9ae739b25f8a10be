"""Canonical notebook text and its hash: equal notebooks hash equal."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import nbformat

from consumers.errors import InvalidNotebook


@dataclass(frozen=True)
class CanonicalNotebook:
    """A validated notebook as stored: canonical nbformat JSON text and its sha256."""

    text: str
    sha256: str

    @property
    def size(self) -> int:
        """Size of the canonical text in bytes."""
        return len(self.text.encode())

    def as_dict(self) -> dict[str, Any]:
        """The document as a dict (for the contents API and inline events)."""
        value: dict[str, Any] = json.loads(self.text)
        return value


def canonicalise(content: dict[str, Any]) -> CanonicalNotebook:
    """Validate ``content`` with nbformat and serialise it canonically.

    The contents API returns cell sources as joined strings; nbformat's writer splits
    them the same way every time, so a notebook round-tripped through Jupyter hashes
    the same. Raises :class:`InvalidNotebook` with nbformat's reason.
    """
    try:
        node = nbformat.from_dict(content)
        _fill_missing_cell_ids(node)
        nbformat.validate(node)
        text = nbformat.writes(node, version=nbformat.NO_CONVERT)
    except Exception as exc:  # nbformat raises many kinds for bad input
        raise InvalidNotebook(f"not a valid notebook: {str(exc)[:300]}") from exc
    return CanonicalNotebook(text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


def _fill_missing_cell_ids(node: Any) -> None:
    """Give id-less cells of an nbformat >= 4.5 notebook ids derived from their position.

    nbformat's validator would invent random ones, so the same content would hash
    differently on every save.
    """
    if (node.get("nbformat") or 0, node.get("nbformat_minor") or 0) < (4, 5):
        return
    cells = node.get("cells")
    if not isinstance(cells, list):
        return
    for index, cell in enumerate(cells):
        if isinstance(cell, dict) and "id" not in cell:
            cell["id"] = f"cell-{index}"


def empty_notebook() -> dict[str, Any]:
    """A new, empty nbformat 4 notebook with a Python 3 kernelspec."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    value: dict[str, Any] = json.loads(nbformat.writes(nb))
    return value
