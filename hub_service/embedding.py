"""How the apps frame Jupyter: who may embed it (CSP), and session cookies that still
work when the app is on another site.

Both the Hub's config and every single-user server's config build their Tornado
settings here, so the two agree.

Same site (the app and the Hub share a registrable domain, or are one host on other
ports): the Hub's default ``SameSite=Lax`` cookies are sent in the iframe; only the CSP
``frame-ancestors`` must name the app origins.

Cross site (e.g. ``https://app.example`` framing ``https://hub.example.org``, or
``localhost`` framing ``127.0.0.1``): the iframe's cookies are third-party. The browser
sends them only if they are ``SameSite=None; Secure`` (so the Hub must be served over
HTTPS), and where third-party cookies are blocked, only if they are also
``Partitioned`` (CHIPS): stored apart for each top-level site that frames the Hub.
Every cookie the Hub and the servers set (login, session, OAuth state, ``_xsrf``) then
carries all three attributes. A partitioned session is one app's only: a second app
framing the same Hub gets a session of its own.

Blocking third-party cookies also denies the iframe ``localStorage``,
``sessionStorage`` and IndexedDB, and JupyterLab reads ``localStorage`` unguarded
(its window resolver then reloads the page forever, jupyterlab#9479).
:func:`lab_templates_with_storage_fallback` gives JupyterLab a page that first puts
an in-memory store where the browser refuses one.
"""

from __future__ import annotations

import http.cookies
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Tornado's set_cookie keywords for every cookie of a cross-site deployment
CROSS_SITE_COOKIE_OPTIONS: dict[str, Any] = {
    "samesite": "None",
    "secure": True,
    "partitioned": True,
}


class EmbeddingConfigError(ValueError):
    """App origins that cannot be configured as given."""


def check_origins(app_origins: Sequence[str], cross_site_origins: Sequence[str]) -> None:
    """Raise :class:`EmbeddingConfigError` unless every cross-site origin is one of the app
    origins and is HTTPS (a ``Secure`` cookie is never set from a plain-HTTP context)."""
    for origin in cross_site_origins:
        if origin not in app_origins:
            raise EmbeddingConfigError(
                f"cross-site origin {origin!r} is not one of the app origins {list(app_origins)}"
            )
        if urlsplit(origin).scheme != "https":
            raise EmbeddingConfigError(
                f"cross-site origin {origin!r} must be https: browsers send third-party "
                "cookies only with Secure, which needs HTTPS on both sides"
            )


def frame_ancestors(app_origins: Sequence[str]) -> str:
    """The CSP header value that lets exactly the app origins (and Jupyter) frame Jupyter."""
    return " ".join(["frame-ancestors 'self'", *app_origins])


def allow_partitioned_cookies() -> None:
    """Teach ``http.cookies`` the ``Partitioned`` attribute (Python 3.14 knows it).

    Tornado builds ``Set-Cookie`` headers with :class:`http.cookies.Morsel`, which
    before 3.14 refuses unknown attributes (``CookieError: Invalid attribute
    'partitioned'``). This adds it as 3.14 does: a flag, written ``Partitioned``.
    Idempotent; a no-op where the attribute is known.
    """
    morsel: Any = http.cookies.Morsel
    if "partitioned" in morsel._reserved:
        return
    morsel._reserved = {**morsel._reserved, "partitioned": "Partitioned"}
    morsel._flags = {*morsel._flags, "partitioned"}


def hub_tornado_settings(
    app_origins: Sequence[str], cross_site_origins: Sequence[str]
) -> dict[str, Any]:
    """``c.JupyterHub.tornado_settings``: the CSP, and with cross-site origins the cookie
    options (the Hub passes them on to each server's OAuth cookies, and uses them for its
    ``_xsrf`` cookie)."""
    check_origins(app_origins, cross_site_origins)
    csp = frame_ancestors(app_origins)
    settings: dict[str, Any] = {"headers": {"Content-Security-Policy": csp}}
    if cross_site_origins:
        allow_partitioned_cookies()
        settings["cookie_options"] = dict(CROSS_SITE_COOKIE_OPTIONS)
    return settings


def singleuser_tornado_settings(
    app_origins: Sequence[str], cross_site_origins: Sequence[str], base_url: str | None = None
) -> dict[str, Any]:
    """``c.ServerApp.tornado_settings`` of a single-user server: the CSP, the origins the
    embed bridge answers, and with cross-site origins the ``_xsrf`` cookie's options (the
    OAuth cookies get theirs from the Hub, through ``JUPYTERHUB_COOKIE_OPTIONS``).

    ``base_url`` is the server's prefix (``JUPYTERHUB_SERVICE_PREFIX``): the ``_xsrf``
    cookie's path, which jupyter_server sets itself only when we set no options.
    """
    check_origins(app_origins, cross_site_origins)
    settings: dict[str, Any] = {
        "headers": {"Content-Security-Policy": frame_ancestors(app_origins)},
        # a JSON string: page config values are strings to JupyterLab's PageConfig
        "page_config_data": {"orchestratorEmbedOrigins": json.dumps(list(app_origins))},
    }
    if cross_site_origins:
        allow_partitioned_cookies()
        xsrf = dict(CROSS_SITE_COOKIE_OPTIONS)
        if base_url:
            xsrf["path"] = base_url
        settings["xsrf_cookie_kwargs"] = xsrf
    return settings


# Runs before JupyterLab's code: where the browser refuses a Web Storage (a third-party
# frame with third-party cookies blocked), an in-memory one stands in for this page.
STORAGE_FALLBACK_SCRIPT = """<script>(function () {
  function usable(name) {
    try {
      var store = window[name];
      store.setItem('orchestrator-probe', '1');
      store.removeItem('orchestrator-probe');
      return true;
    } catch (error) {
      return false;
    }
  }
  function memoryStorage() {
    var items = new Map();
    return {
      get length() { return items.size; },
      key: function (i) {
        var keys = Array.from(items.keys());
        return i < keys.length ? keys[i] : null;
      },
      getItem: function (k) { k = String(k); return items.has(k) ? items.get(k) : null; },
      setItem: function (k, v) { items.set(String(k), String(v)); },
      removeItem: function (k) { items.delete(String(k)); },
      clear: function () { items.clear(); }
    };
  }
  ['localStorage', 'sessionStorage'].forEach(function (name) {
    if (!usable(name)) {
      Object.defineProperty(window, name, { value: memoryStorage(), configurable: true });
    }
  });
})();</script>"""


def lab_templates_with_storage_fallback(directory: Path, app_dir: Path | None = None) -> Path:
    """Write JupyterLab's page template with :data:`STORAGE_FALLBACK_SCRIPT` first in its
    ``<head>`` into ``directory``; return it, for ``c.LabApp.templates_dir``.

    ``app_dir`` is JupyterLab's application directory (default: the one ``jupyter lab``
    uses). Raises ``ValueError`` if its template has no ``<head>``.
    """
    if app_dir is None:
        from jupyterlab.commands import get_app_dir

        app_dir = Path(get_app_dir())
    page = (app_dir / "static" / "index.html").read_text()
    head = re.search(r"<head[^>]*>", page)
    if head is None:
        raise ValueError(f"{app_dir}/static/index.html has no <head>")
    directory.mkdir(parents=True, exist_ok=True)
    patched = page[: head.end()] + STORAGE_FALLBACK_SCRIPT + page[head.end() :]
    (directory / "index.html").write_text(patched)
    return directory


def configure_singleuser_embedding(
    config: Any, app_origins: Sequence[str], cross_site_origins: Sequence[str]
) -> None:
    """Set a single-user server's embedding config on ``config`` (its ``c``): the Tornado
    settings (:func:`singleuser_tornado_settings`) and, with cross-site origins,
    JupyterLab's page with the storage fallback (written into the runtime folder of the
    account the server runs as)."""
    import os

    from jupyter_core.paths import jupyter_runtime_dir

    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    config.ServerApp.tornado_settings = singleuser_tornado_settings(
        app_origins, cross_site_origins, prefix
    )
    if cross_site_origins:
        templates = Path(jupyter_runtime_dir()) / "orchestrator-lab-templates"
        config.LabApp.templates_dir = str(lab_templates_with_storage_fallback(templates))
