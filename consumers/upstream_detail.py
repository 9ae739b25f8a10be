"""What of an upstream error's text may reach an app: no paths, hosts or tokens.

Error messages of the Hub and the single-user servers can name server file paths
(``/srv/home/alice/...``), internal URLs and hosts, or token-like strings. Command
errors are shown to apps and published in ``command.failed``, so the upstream text
is reduced to what tells the app what happened.
"""

from __future__ import annotations

import re

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_HOST_PORT = re.compile(
    r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+):\d+\b"
)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/'\"]+/)*[^\s/'\"]*")
_TOKEN_LIKE = re.compile(r"\b[A-Za-z0-9_\-]{32,}\b")
MAX_DETAIL_CHARS = 300


def quiet_detail(text: str) -> str:
    """``text`` with URLs, host:port pairs, absolute paths and token-like strings replaced
    by ``<url>``, ``<host>``, ``<path>`` and ``<secret>``; at most 300 characters."""
    text = _URL.sub("<url>", text)
    text = _HOST_PORT.sub("<host>", text)
    text = _ABSOLUTE_PATH.sub("<path>", text)
    text = _TOKEN_LIKE.sub("<secret>", text)
    return text[:MAX_DETAIL_CHARS]
