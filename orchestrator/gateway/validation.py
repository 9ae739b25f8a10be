"""Turning invalid input into 4xx answers that name the field and the problem.

Command bodies are validated by the pydantic models of :mod:`schemas.commands`; path
and query parameters by the same name rules (:mod:`schemas.names`). Every field-level
problem is a 422 whose ``details`` list ``{"field", "problem"}`` pairs.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from runtime.http_errors import ApiError
from runtime.strict_json import NotStrictJson, loads_strict
from schemas.commands import COMMAND_ADAPTER, INTERNAL_COMMAND_TYPES, Command, CommandType

# what apps may send (the orchestrator's own commands, such as cull-server, are not)
COMMAND_TYPES = tuple(t.value for t in CommandType if t not in INTERNAL_COMMAND_TYPES)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
# pydantic prefixes these location parts for unions and wrapped validators
_SYNTHETIC_LOC_PREFIXES = ("function-", "tagged-union")


def _field(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(_SYNTHETIC_LOC_PREFIXES)]
    if parts and parts[0] in COMMAND_TYPES:
        parts = parts[1:]  # the discriminator value pydantic puts first
    return ".".join(parts)


def _problem(err: ErrorDetails) -> tuple[str | None, str]:
    """(field override, message) for one pydantic error, in words an app developer reads."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return None, "unknown field"
    if kind == "missing":
        return None, "required field is missing"
    if kind == "union_tag_not_found":
        return "type", f"required field is missing; one of: {', '.join(COMMAND_TYPES)}"
    if kind == "union_tag_invalid":
        return "type", f"unknown command type; one of: {', '.join(COMMAND_TYPES)}"
    return None, err["msg"].removeprefix("Value error, ")


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """``[{"field": "path", "problem": "must not contain '..'"}, ...]`` for ``exc``.

    The field is the dotted location inside the command body (``body`` for problems of
    the whole object, such as "give exactly one of 'path' and 'folder'").
    """
    details = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        override, message = _problem(err)
        details.append({"field": override or _field(err["loc"]) or "body", "problem": message})
    return details


def invalid(code: str, details: list[dict[str, str]]) -> ApiError:
    """A 422 naming every field and its problem (message joins them for humans)."""
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    return ApiError(422, code, summary, details=details)


def invalid_parameter(name: str, problem: str) -> ApiError:
    """A 422 for one bad path or query parameter."""
    return invalid("invalid_parameter", [{"field": name, "problem": problem}])


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body; 400 naming the problem (syntax, nesting, not an object).

    Strict JSON (:mod:`runtime.strict_json`): a key given twice in one object and
    ``NaN``/``Infinity`` are refused.
    """
    try:
        body = loads_strict(raw)
    except NotStrictJson as exc:
        raise ApiError(400, "invalid_json", f"body is not strict JSON: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    return body


def parse_command(raw: bytes) -> Command:
    """Decode and validate a command body; 400 for bad JSON, 422 for a bad command."""
    body = decode_json_object(raw)
    try:
        return COMMAND_ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise invalid("invalid_command", validation_details(exc)) from None
    except RecursionError:
        raise ApiError(422, "invalid_command", "a field is nested too deeply") from None


def check_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header if well-formed (1-255 visible ASCII), else 400."""
    if value is not None and not _IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise ApiError(
            400,
            "invalid_header",
            "Idempotency-Key must be 1-255 visible ASCII characters",
            details=[{"field": "Idempotency-Key", "problem": "1-255 visible ASCII characters"}],
        )
    return value


def parse_wait(raw: str | None, maximum: float) -> float:
    """The ``?wait=`` seconds of a status request (0 when absent), within ``[0, maximum]``."""
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise invalid_parameter("wait", "must be a number of seconds") from None
    if not 0 <= wait <= maximum:  # also rejects nan
        raise invalid_parameter("wait", f"must be between 0 and {maximum:g} seconds")
    return wait
