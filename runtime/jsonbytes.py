"""JSON serialisation by orjson where it is on a hot path, with ``json`` as a fallback."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, **kwargs: Any) -> bytes:
    """``value`` as compact JSON bytes; non-string dict keys allowed, as ``json`` does.

    What orjson refuses (integers beyond 64 bits) goes through ``json`` instead, so
    anything ``json`` can serialise still can be. ``kwargs`` are for the fallback
    (structlog's renderer passes ``default``).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, **kwargs)
    except orjson.JSONEncodeError:
        return json.dumps(value, **kwargs).encode()


def dumps_text(value: Any) -> str:
    """:func:`dumps` as text (SQLAlchemy's ``json_serializer`` for JSON columns)."""
    return dumps(value).decode()
