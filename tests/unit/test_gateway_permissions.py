"""App authorisation: allowed command types and the user prefix, one rule for every route."""

from __future__ import annotations

import pytest

from orchestrator.gateway.permissions import authorize
from runtime.db.apps import AppIdentity
from runtime.http_errors import ApiError
from schemas.commands import CommandType

LIMITED = AppIdentity("lim", frozenset({"open", "save"}), "lim-")


def test_an_unlimited_app_may_send_anything_for_anyone() -> None:
    authorize(AppIdentity("any", None, None), CommandType.START_SERVER, "erin")


def test_a_limited_app_may_send_its_types_for_its_users() -> None:
    authorize(LIMITED, CommandType.OPEN, "lim-dave")


@pytest.mark.parametrize(
    ("command_type", "user", "words"),
    [
        (CommandType.START_SERVER, "lim-dave", "may not send 'start-server' commands (allowed: "),
        (CommandType.OPEN, "erin", "users whose name starts with 'lim-'"),
    ],
)
def test_anything_else_is_forbidden(command_type: CommandType, user: str, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        authorize(LIMITED, command_type, user)
    assert (caught.value.status_code, caught.value.code) == (403, "forbidden")
    assert words in caught.value.message
