"""Invalid input becomes a 4xx whose details name the field and the problem."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from orchestrator.gateway.middleware import choose_correlation_id
from orchestrator.gateway.validation import check_idempotency_key, parse_command, parse_wait
from runtime.http_errors import ApiError


def _error(exc: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.text or "{}")["error"]
    return body


def _problems(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ApiError) as caught:
        parse_command(json.dumps(body).encode())
    assert caught.value.status == 422
    error = _error(caught.value)
    assert error["code"] == "invalid_command"
    return {d["field"]: d["problem"] for d in error["details"]}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"type": "ensure-user", "user": "alice", "colour": "red"}, "colour", "unknown field"),
        ({"type": "ensure-user", "user": "Alice"}, "user", "lowercase"),
        ({"type": "ensure-user", "user": "a" * 65}, "user", "at most 64"),
        ({"type": "ensure-user"}, "user", "required"),
        ({"type": "save", "user": "alice", "path": "/etc/x.ipynb"}, "path", "relative"),
        ({"type": "save", "user": "alice", "path": "a/../b.ipynb"}, "path", "'..'"),
        ({"type": "save", "user": "alice", "path": "notes.txt"}, "path", ".ipynb"),
        ({"type": "save", "user": "alice", "path": ".hidden/x.ipynb"}, "path", "hidden"),
        ({"type": "open", "user": "alice"}, "path", "required"),
        ({"type": "create", "user": "alice", "folder": "a/../b"}, "folder", "'..'"),
        ({"type": "create", "user": "alice", "path": "a.ipynb", "folder": "f"}, "body", "one of"),
        (
            {"type": "restore", "user": "alice", "path": "a.ipynb", "version_id": "v1"},
            "version_id",
            "UUID",
        ),
        ({"user": "alice"}, "type", "missing"),
        ({"type": "delete-everything", "user": "alice"}, "type", "unknown command type"),
    ],
)
def test_each_bad_field_is_named_with_its_problem(
    body: dict[str, Any], field: str, words: str
) -> None:
    problems = _problems(body)
    assert field in problems, problems
    assert words.lower() in problems[field].lower()


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems({"type": "save", "user": "Bob", "path": "../x", "extra": 1})
    assert set(problems) == {"user", "path", "extra"}


def test_valid_commands_are_normalised() -> None:
    command = parse_command(b'{"type": "save", "user": "alice", "path": "a//./b.ipynb"}')
    assert command.model_dump(mode="json") == {"type": "save", "user": "alice", "path": "a/b.ipynb"}


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b""])
def test_undecodable_or_non_object_bodies_are_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_command(raw)
    assert caught.value.status == 400
    assert _error(caught.value)["code"] == "invalid_json"


@pytest.mark.parametrize("key", ["k", "order-42:retry", "x" * 255, "~!@#$%^&*()"])
def test_idempotency_keys_accepted(key: str) -> None:
    assert check_idempotency_key(key) == key
    assert check_idempotency_key(None) is None


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "ünïcode", "tab\there"])
def test_bad_idempotency_keys_are_400_naming_the_header(key: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_idempotency_key(key)
    assert caught.value.status == 400
    assert _error(caught.value)["details"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(("raw", "seconds"), [(None, 0.0), ("0", 0.0), ("2.5", 2.5), ("30", 30.0)])
def test_wait_parsed(raw: str | None, seconds: float) -> None:
    assert parse_wait(raw, 30.0) == seconds


@pytest.mark.parametrize("raw", ["-1", "31", "soon", "nan", "inf", ""])
def test_bad_wait_is_422_naming_wait(raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_wait(raw, 30.0)
    assert caught.value.status == 422
    assert _error(caught.value)["details"] == [
        {"field": "wait", "problem": caught.value.message.removeprefix("wait: ")}
    ]


def test_correlation_ids_kept_when_well_formed_else_generated() -> None:
    assert choose_correlation_id("req-1:a.b_c") == "req-1:a.b_c"
    for bad in (None, "", "has space", "x" * 129, "new\nline"):
        generated = choose_correlation_id(bad)
        assert str(uuid.UUID(generated)) == generated
