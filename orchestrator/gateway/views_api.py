"""``GET /v1/views/{code}``: the read-only view of a notebook, for an app's iframe.

The code comes from ``open`` with ``mode: "view"`` (:class:`schemas.launch_codes.ViewLinkIssuer`):
signed with the launch secret in the view context (so it is no launch code and logs no
one in), naming a workspace and a notebook path, valid until it expires. The page is the
latest stored version rendered by nbconvert in the gateway's notebook worker, outputs
included and markdown sanitized. It has no editor, kernel or save: nothing can change a
notebook from it. It is served with ``Content-Security-Policy: sandbox`` (a unique origin,
no scripts), no network sources but inline styles and ``data:`` images, and
``frame-ancestors`` of the configured app origins, so a notebook's own HTML or scripts
do nothing in the viewer.
"""

from __future__ import annotations

import time

from aiohttp import web

from orchestrator.gateway.context import NOTEBOOK_WORKER, NOTEBOOKS, SETTINGS
from runtime.http_errors import ApiError
from runtime.notebook_worker import NotebookTooLarge, WorkTooSlow
from schemas.launch_codes import LaunchCodeError, read_launch_code

routes = web.RouteTableDef()


def view_policy(app_origins: list[str]) -> str:
    """The CSP of a view page."""
    return "; ".join(
        [
            "sandbox",
            "default-src 'none'",
            "style-src 'unsafe-inline'",
            "img-src data:",
            "font-src data:",
            " ".join(["frame-ancestors 'self'", *app_origins]),
        ]
    )


@routes.get("/v1/views/{code}")
async def view_notebook(request: web.Request) -> web.Response:
    """The view page of the code's notebook (404 for a forged code, 410 once expired)."""
    settings = request.app[SETTINGS]
    secret = settings.launch_secret.get_secret_value()
    if not secret:
        raise ApiError(404, "not_found", "views are not configured (no launch secret)")
    try:
        claims = read_launch_code(secret, request.match_info["code"], view=True)
    except LaunchCodeError:
        raise ApiError(404, "not_found", "no such view") from None
    if time.time() > claims.expires_at:
        raise ApiError(410, "expired", "this view link has expired: open the notebook again")
    notebooks = request.app[NOTEBOOKS]
    latest = await notebooks.latest(claims.user, claims.path)
    text = None if latest is None else await notebooks.content(latest.sha256)
    if text is None:
        raise ApiError(404, "not_found", f"no stored version of {claims.path}")
    try:
        page = await request.app[NOTEBOOK_WORKER].render(text)
    except NotebookTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from None
    except WorkTooSlow as exc:
        raise ApiError(503, "too_slow", str(exc)) from None
    return web.Response(
        text=page,
        content_type="text/html",
        headers={
            "Content-Security-Policy": view_policy(settings.app_origins),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
