"""What an authenticated app may do: send which command types, for which users.

Authentication (who the caller is, 401) is :mod:`orchestrator.gateway.auth`; this is
authorisation (what that app may do, 403), the same for every route that acts for a user.
"""

from __future__ import annotations

from runtime.db.apps import AppIdentity
from runtime.http_errors import ApiError
from schemas.commands import CommandType


def authorize(app: AppIdentity, command_type: CommandType, user: str) -> None:
    """Return if ``app`` may send ``command_type`` commands for ``user``; else raise a 403.

    The app's ``allowed_types`` (when set) must hold the type, and its ``user_prefix``
    (when set) must begin the user name. A route that does what a command would (a
    launch link opens a notebook) asks for that command's type.
    """
    if app.allowed_types is not None and command_type.value not in app.allowed_types:
        allowed = ", ".join(sorted(app.allowed_types)) or "none"
        raise ApiError(
            403,
            "forbidden",
            f"app '{app.name}' may not send '{command_type.value}' commands (allowed: {allowed})",
        )
    if not app.may_act_for(user):
        raise ApiError(
            403,
            "forbidden",
            f"app '{app.name}' may only act for users whose name starts with '{app.user_prefix}'",
        )
