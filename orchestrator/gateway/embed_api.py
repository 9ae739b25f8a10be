"""Embedding support: the host-side bridge module and launch links for existing notebooks.

- ``GET /static/orchestrator-embed.js``: the ES module app pages import (public, CORS
  open: it is code, not data).
- ``POST /v1/users/{user}/launch`` ``{"path": ...}``: a one-time launch link for a
  notebook of ``user`` (the app must be allowed ``open`` commands and that user). The
  gateway only signs; it does not check that the server runs (send ``open`` for that).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from orchestrator.gateway.context import SETTINGS, WORKSPACES, current_app
from orchestrator.gateway.permissions import authorize
from orchestrator.gateway.validation import decode_json_object
from runtime.http_errors import ApiError
from schemas.commands import CommandType
from schemas.launch_codes import LaunchLinkIssuer, launch_link_issuer
from schemas.names import check_notebook_path, check_username

STATIC_DIR = Path(__file__).resolve().parent / "static"
EMBED_MODULE_PATH = "/static/orchestrator-embed.js"
# per Hub name, the issuer of launch links into that Hub
LAUNCH_LINKS = web.AppKey("launch_links", dict[str, LaunchLinkIssuer])

routes = web.RouteTableDef()


@routes.get(EMBED_MODULE_PATH)
async def embed_module(_request: web.Request) -> web.Response:
    """The host-side bridge module, loadable cross-origin by any app page."""
    return web.Response(
        body=(STATIC_DIR / "orchestrator-embed.js").read_bytes(),
        content_type="text/javascript",
        charset="utf-8",
        headers={
            "Access-Control-Allow-Origin": "*",
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _launch_target(request: web.Request) -> tuple[str, str]:
    user = request.match_info["user"]
    try:
        check_username(user)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"user: {exc}") from None
    authorize(current_app(request), CommandType.OPEN, user)
    body = decode_json_object(await request.read() or b"{}")
    if not isinstance(body.get("path"), str):
        raise ApiError(422, "invalid_command", "path: a notebook path is required")
    try:
        return user, check_notebook_path(body["path"])
    except ValueError as exc:
        raise ApiError(422, "invalid_command", f"path: {exc}") from None


@routes.post("/v1/users/{user}/launch")
async def create_launch_link(request: web.Request) -> web.Response:
    """A fresh single-use launch link (``launch_url``, ``expires_at``) for one notebook."""
    user, path = await _launch_target(request)
    issuers = request.app.get(LAUNCH_LINKS)
    if issuers is None:
        raise ApiError(503, "unavailable", "launch links are not configured (no launch secret)")
    # the calling app's workspace of the user, on the Hub it lives on (placed now if
    # new): that Hub signs the browser in there only
    workspace = await request.app[WORKSPACES].ensure(current_app(request).name, user)
    issuer = issuers.get(workspace.hub or next(iter(issuers)))
    if issuer is None:
        raise ApiError(503, "unavailable", f"the user's Hub {workspace.hub!r} is not configured")
    link = issuer.link(workspace.name, path)
    return web.json_response(
        {
            "user": user,
            "path": path,
            "launch_url": link.url,
            "expires_at": link.expires_at.isoformat(),
        },
        headers={"Cache-Control": "no-store"},
    )


def setup_embedding(app: web.Application) -> None:
    """Add the embedding routes; launch links only when the settings hold a launch secret."""
    settings = app[SETTINGS]
    issuers = {
        spec.name: issuer
        for spec in settings.hub_specs()
        if (issuer := launch_link_issuer(settings, spec.public_url)) is not None
    }
    if issuers:
        app[LAUNCH_LINKS] = issuers
    app.router.add_routes(routes)
