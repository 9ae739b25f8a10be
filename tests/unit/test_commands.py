from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from schemas.commands import (
    BUS_COMMAND_ADAPTER,
    COMMAND_ADAPTER,
    INTERNAL_COMMAND_TYPES,
    CommandMessage,
    CommandType,
    CreateNotebook,
    utcnow,
)


def test_every_command_type_validates() -> None:
    bodies = [
        {"type": "ensure-user", "user": "a"},
        {"type": "start-server", "user": "a"},
        {"type": "stop-server", "user": "a"},
        {"type": "create", "user": "a", "path": "x.ipynb"},
        {"type": "create", "user": "a", "folder": "work"},
        {"type": "restore", "user": "a", "path": "x.ipynb", "version_id": str(uuid.uuid4())},
        {"type": "save", "user": "a", "path": "x.ipynb"},
        {"type": "open", "user": "a", "path": "x.ipynb"},
    ]
    seen = {COMMAND_ADAPTER.validate_python(b).type for b in bodies}
    assert seen == set(CommandType) - INTERNAL_COMMAND_TYPES


def test_apps_cannot_send_the_orchestrators_own_commands() -> None:
    cull = {"type": "cull-server", "user": "a", "reason": "idle", "scheduled_at": utcnow()}
    assert BUS_COMMAND_ADAPTER.validate_python(cull).type == CommandType.CULL_SERVER
    with pytest.raises(ValidationError):
        COMMAND_ADAPTER.validate_python(cull)


def test_unknown_fields_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        COMMAND_ADAPTER.validate_python({"type": "ensure-user", "user": "a", "admin": True})


def test_unknown_type_rejected() -> None:
    with pytest.raises(ValidationError):
        COMMAND_ADAPTER.validate_python({"type": "format-disk", "user": "a"})


def test_create_needs_exactly_one_target() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        CreateNotebook(user="a")
    with pytest.raises(ValidationError, match="exactly one"):
        CreateNotebook(user="a", path="a.ipynb", folder="f")


def test_message_round_trip() -> None:
    msg = CommandMessage(
        id=uuid.uuid4(),
        app="demo",
        correlation_id="c1",
        accepted_at=utcnow(),
        command=COMMAND_ADAPTER.validate_python({"type": "save", "user": "u", "path": "a.ipynb"}),
    )
    again = CommandMessage.model_validate_json(msg.model_dump_json())
    assert again == msg
    assert again.user == "u"
