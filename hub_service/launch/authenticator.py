"""The Hub authenticator the orchestrator ships: browsers log in only through launch links.

``GET /hub/launch?code=…`` redeems a one-time launch code (see :mod:`.codes`), sets the
Hub login cookie for the user the code names and redirects to that user's notebook.
A reused, expired or forged code gets a clear error page (410 or 403). There is no
login form: ``/hub/login`` explains that notebooks are opened from the app. API tokens
(services, the orchestrator) are unaffected.

Configure with ``c.JupyterHub.authenticator_class =
"hub_service.launch.authenticator.LaunchCodeAuthenticator"`` and
``c.LaunchCodeAuthenticator.secret`` (or the ``ORCH_LAUNCH_SECRET`` environment variable)
and ``c.LaunchCodeAuthenticator.used_codes_file`` (where redeemed codes are recorded, so
that single use survives a Hub restart).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from traitlets import Float, Unicode, default

from hub_service.launch.used_codes import UsedCodesFile
from schemas.launch_codes import (
    LaunchClaims,
    LaunchCodeError,
    LaunchCodeVerifier,
    notebook_lab_path,
)

SECRET_ENV = "ORCH_LAUNCH_SECRET"


class LaunchCodeAuthenticator(Authenticator):  # type: ignore[misc]
    """Authenticates a browser by a single-use launch code; anyone holding a valid one may in.

    The signed code is the authorisation (the orchestrator only issues codes for users
    an app may act for), so no allow-list applies.
    """

    secret = Unicode(help="Shared HMAC secret of the launch codes (never logged).").tag(config=True)
    max_code_ttl_seconds = Float(
        600.0, help="Codes valid for longer than this are refused as misissued."
    ).tag(config=True)
    used_codes_file = Unicode(
        "",
        help="SQLite file recording redeemed codes, so single use survives a restart. "
        "Empty: in memory, and codes issued before the Hub started are refused.",
    ).tag(config=True)

    @default("secret")
    def _secret_from_env(self) -> str:
        return os.environ.get(SECRET_ENV, "")

    @default("allow_all")
    def _allow_all(self) -> bool:
        return True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        used = UsedCodesFile(Path(self.used_codes_file)) if self.used_codes_file else None
        self._verifier = LaunchCodeVerifier(
            self.secret,
            # with the file, codes issued before this start are still single-use
            not_before=0.0 if used is not None else time.time(),
            max_ttl_seconds=self.max_code_ttl_seconds,
            used=used,
        )

    def redeem(self, code: str) -> LaunchClaims:
        """The claims of a valid unused ``code`` (now used up); raises LaunchCodeError."""
        return self._verifier.redeem(code)

    async def authenticate(
        self, handler: Any, data: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The user named by the launch code in ``data['launch_code']``.

        Raises LaunchCodeError for a refused code. The redeemed claims are left on the
        handler as ``launch_claims`` so that it can open the notebook they name.
        """
        code = (data or {}).get("launch_code")
        if not isinstance(code, str):
            return None
        claims = self.redeem(code)
        handler.launch_claims = claims
        return {"name": claims.user}

    def get_handlers(self, app: Any) -> list[tuple[str, type[BaseHandler]]]:
        """``/launch`` redeems codes; ``/login`` replaces the form with an explanation."""
        return [("/launch", LaunchHandler), ("/login", NoLoginFormHandler)]


class _PageHandler(BaseHandler):  # type: ignore[misc]
    async def _page(self, status: int, title: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        html = await self.render_template(
            "error.html", status_code=status, status_message=title, message=message
        )
        self.finish(html)


class LaunchHandler(_PageHandler):
    """``GET /hub/launch?code=…``: log in by launch code and open the notebook it names."""

    launch_claims: LaunchClaims | None = None

    async def get(self) -> None:
        """Redirect to the notebook with a fresh Hub cookie, or show why the code is refused."""
        code = self.get_argument("code", default="")
        try:
            user = await self.login_user({"launch_code": code})
        except LaunchCodeError as refused:
            self.log.warning("launch code refused: %s", type(refused).__name__)
            await self._page(refused.status, refused.title, refused.explanation)
            return
        claims = self.launch_claims
        if user is None or claims is None:
            await self._page(403, "Launch link refused", "This user may not use JupyterHub.")
            return
        self.set_header("Cache-Control", "no-store")
        self.redirect(notebook_lab_path(user.name, claims.path, self.base_url))


class NoLoginFormHandler(_PageHandler):
    """``/hub/login``: there is no form; a signed-in user goes on, others read why not."""

    async def get(self) -> None:
        """Redirect a signed-in user to ``next``; explain launch links to anyone else."""
        user = self.current_user
        if user:
            self.redirect(self.get_next_url(user))
            return
        await self._page(
            403,
            "Open this notebook from your app",
            "Notebooks here are opened through a launch link from the app you use; "
            "there is no sign-in form. Go back to your app and open the notebook again.",
        )
