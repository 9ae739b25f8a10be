"""Read-only notebook API: a user's notebooks, their versions, one version's content.

Everything is read from the calling app's workspace of that user: another app's
notebooks and versions do not exist for it (404), whatever its key allows.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from orchestrator.gateway.context import NOTEBOOKS, WORKSPACES, current_app
from orchestrator.gateway.validation import invalid_parameter
from runtime.http_errors import ApiError
from schemas.names import check_notebook_path, check_username
from schemas.versions import StoredVersion
from schemas.workspaces import workspace_name

routes = web.RouteTableDef()


def _user(request: web.Request) -> tuple[str, str]:
    """The ``{user}`` of the path and the calling app's workspace of that user."""
    user = request.match_info["user"]
    try:
        check_username(user)
    except ValueError as exc:
        raise invalid_parameter("user", str(exc)) from None
    app = current_app(request)
    if not app.may_act_for(user):
        raise ApiError(403, "forbidden", f"app '{app.name}' may not read user '{user}'")
    return user, workspace_name(app.name, user)


def _path(request: web.Request) -> str:
    if "path" not in request.query:
        raise invalid_parameter("path", "required query parameter is missing")
    try:
        return check_notebook_path(request.query["path"])
    except ValueError as exc:
        raise invalid_parameter("path", str(exc)) from None


def version_view(version: StoredVersion, user: str) -> dict[str, Any]:
    """The public JSON shape of a version of ``user`` (the person; without content)."""
    return {
        "id": str(version.id),
        "user": user,
        "path": version.path,
        "sha256": version.sha256,
        "size": version.size,
        "origin": version.origin,
        "command_id": None if version.writing_command is None else str(version.writing_command),
        "app": version.app,
        "restored_from": None if version.restored_from is None else str(version.restored_from),
        "before_overwrite": version.before_overwrite,
        "created_at": version.created_at.isoformat(),
    }


@routes.get("/v1/users/{user}/notebooks")
async def list_notebooks(request: web.Request) -> web.Response:
    """Notebooks of a user with their latest version id, most recent first."""
    user, workspace = _user(request)
    notebooks = await request.app[NOTEBOOKS].notebooks(workspace)
    return web.json_response(
        {
            "user": user,
            "notebooks": [
                {
                    "path": n.path,
                    "latest_version_id": str(n.latest_version_id) if n.latest_version_id else None,
                    "updated_at": n.updated_at.isoformat(),
                    "deleted": n.deleted,
                }
                for n in notebooks
            ],
        }
    )


@routes.get("/v1/users/{user}/versions")
async def list_versions(request: web.Request) -> web.Response:
    """Versions of one notebook (``?path=``), newest first."""
    user, workspace = _user(request)
    path = _path(request)
    versions = await request.app[NOTEBOOKS].versions(workspace, path)
    return web.json_response(
        {"user": user, "path": path, "versions": [version_view(v, user) for v in versions]}
    )


async def readable_version(request: web.Request, raw_id: str) -> tuple[StoredVersion, str]:
    """The version ``raw_id`` and its person, if the calling app may read it: one of
    its own workspaces' (another app's is 404, as if it did not exist)."""
    try:
        version_id = uuid.UUID(raw_id)
    except ValueError:
        raise invalid_parameter("version_id", "must be a UUID") from None
    version = await request.app[NOTEBOOKS].version(version_id)
    owner = None if version is None else await request.app[WORKSPACES].owner(version.user)
    app = current_app(request)
    if version is None or owner is None or owner.app != app.name or not app.may_act_for(owner.user):
        raise ApiError(404, "not_found", f"no version {version_id}")
    return version, owner.user


@routes.get("/v1/versions/{version_id}")
async def get_version(request: web.Request) -> web.Response:
    """One version with its nbformat content."""
    version, user = await readable_version(request, request.match_info["version_id"])
    content = await request.app[NOTEBOOKS].content(version.sha256)
    return web.json_response(
        {**version_view(version, user), "content": json.loads(content) if content else None}
    )
