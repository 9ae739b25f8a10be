"""Strict JSON decoding for bodies from outside: no duplicate keys, no NaN or Infinity.

Python's json module keeps the last of two equal keys and accepts ``NaN`` and
``Infinity``; other readers keep the first or refuse. A body that different readers
understand differently (``{"type": "stop-server", ..., "type": "ensure-user"}``) is
refused instead.
"""

from __future__ import annotations

import json
from typing import Any


class NotStrictJson(ValueError):
    """The text is JSON to Python's json module, but not strict JSON."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise NotStrictJson(f"duplicate key {key!r}")
        seen.add(key)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise NotStrictJson(f"{name} is not a JSON number")


def loads_strict(raw: bytes | str) -> Any:
    """Decode ``raw``; raise :class:`NotStrictJson` for duplicate keys or non-numbers,
    ``ValueError`` for any other syntax error, ``RecursionError`` for deep nesting."""
    return json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
