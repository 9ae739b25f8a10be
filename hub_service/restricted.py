"""Restricted-data mode of the single-user servers: notebooks can be worked on inside the
platform but not taken out of it.

Loaded as a jupyter_server *extra service* (``c.ServerApp.extra_services``), whose
handlers are matched before the server's own, so on the server, not only in the UI:

- ``/files/…`` (downloads, "Copy Download Link", files opened in a new tab) answers 403;
- ``/nbconvert/…`` and ``/api/nbconvert`` (export as HTML, PDF, script…) answer 403;
- the contents API gives a file's content only to the browser session of the server's
  user (its cookie, or the OAuth token the Hub issued to that login session, which
  JupyterLab sends) and to the orchestrator's service token (saves, restores); a
  request with the user's own API token (one made on the Hub's token page, say, to
  script a copy from elsewhere) gets 403 for any read with content. Listing folders,
  and writing, stay as they are.

The UI side (Download and Export hidden) is JupyterLab's ``disabledExtensions``, written
next to the servers' config
(:data:`hub_service.jupyterhub_contract.RESTRICTED_HIDDEN_LAB_PLUGINS`).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import APIHandler, path_regex
from jupyter_server.services.contents.handlers import ContentsHandler
from jupyter_server.services.contents.handlers import default_handlers as contents_handlers
from tornado import web

REFUSAL = "restricted data: downloads and exports are disabled on this platform"


class RefusedHandler(APIHandler):
    """403 for every method: the route does not exist for this platform's users."""

    def _refuse(self, *_args: Any, **_kwargs: Any) -> None:
        raise web.HTTPError(403, REFUSAL)

    get = post = put = patch = delete = _refuse


class RestrictedContentsHandler(ContentsHandler):
    """The contents API, refusing reads with content to other clients than the user's
    browser session and the orchestrator's service token."""

    async def get(self, path: str = "") -> None:
        """As jupyter_server's, unless a read with content comes with a user's token."""
        if self.get_query_argument("content", "1") != "0" and self._with_user_token():
            raise web.HTTPError(403, f"{REFUSAL} (the contents API answers the browser only)")
        reading = super().get(path)
        if reading is not None:
            await reading

    def _with_user_token(self) -> bool:
        """A token (header or ``?token=``) authenticated this request that is neither a
        service's nor the one the Hub gave the user's browser session (JupyterLab sends
        that one as a header too: its model names the login session it belongs to)."""
        by_token = bool(self.request.headers.get("Authorization")) or bool(
            self.get_query_argument("token", "")
        )
        hub_user = getattr(self.current_user, "hub_user", None) or {}
        browser = bool(hub_user.get("session_id"))
        return by_token and hub_user.get("kind") != "service" and not browser


# Matched before the server's own handlers; the contents API's other routes
# (checkpoints, trust) come first, as in jupyter_server, so only its main route changes.
default_handlers = [
    (r"/files/(.*)", RefusedHandler),
    (r"/nbconvert/(.*)", RefusedHandler),
    (r"/api/nbconvert(.*)", RefusedHandler),
    *(route for route in contents_handlers if route[1] is not ContentsHandler),
    (rf"/api/contents{path_regex}", RestrictedContentsHandler),
]
