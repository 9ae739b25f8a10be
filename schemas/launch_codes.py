"""Launch codes: short-lived, single-use, HMAC-signed claims that log a browser in.

A code is ``base64url(json claims) "." base64url(hmac_sha256)``. The claims bind one
user and one notebook path, carry a random nonce, the issue time and the expiry.
Nothing in a code is a reusable credential: the Hub (:class:`LaunchCodeVerifier`)
accepts each nonce once, only until the code expires, and never a code issued before
it started (its nonce memory is in-process). The signing secret is shared by the
issuers and the Hub through settings; it never appears in a code, a log or an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from pydantic import SecretStr

from schemas.names import check_notebook_path, check_username

Clock = Callable[[], float]
LAUNCH_PATH = "/hub/launch"
MIN_SECRET_LENGTH = 32
DEFAULT_TTL_SECONDS = 120.0
_SIGNING_CONTEXT = b"orchestrator-launch-v1."
# View codes (read-only views served by the gateway) are signed in another context, so
# a view code is never a launch code: it logs no browser in anywhere.
_VIEW_CONTEXT = b"orchestrator-view-v1."
VIEW_PATH = "/v1/views/"
_VERSION = 1


class LaunchCodeError(Exception):
    """A code the Hub refuses; ``status``/``title``/``explanation`` make the page shown."""

    status = 403
    title = "Launch link refused"
    explanation = "This launch link is not valid. Open the notebook again from your app."


class ForgedLaunchCode(LaunchCodeError):
    """Malformed, or not signed with the shared secret."""


class ExpiredLaunchCode(LaunchCodeError):
    """Past its expiry (or issued before the Hub last started)."""

    status = 410
    title = "Launch link expired"
    explanation = (
        "This launch link has expired: links work for a short time only. "
        "Open the notebook again from your app."
    )


class ReusedLaunchCode(LaunchCodeError):
    """Its nonce was already redeemed."""

    status = 410
    title = "Launch link already used"
    explanation = (
        "This launch link has already been used: each link works once. "
        "Open the notebook again from your app."
    )


def _check_secret(secret: str) -> bytes:
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the launch secret must be at least {MIN_SECRET_LENGTH} characters")
    return secret.encode()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, body: str, context: bytes = _SIGNING_CONTEXT) -> str:
    digest = hmac.new(key, context + body.encode("ascii"), hashlib.sha256).digest()
    return _b64encode(digest)


@dataclass(frozen=True)
class LaunchClaims:
    """What a valid code says: who, which notebook, and its lifetime (epoch seconds)."""

    user: str
    path: str
    nonce: str
    issued_at: float
    expires_at: float


def issue_launch_code(
    secret: str,
    user: str,
    path: str,
    *,
    ttl_seconds: float,
    now: float | None = None,
    view: bool = False,
) -> str:
    """A new code for ``user`` and notebook ``path``, valid ``ttl_seconds`` from ``now``
    (with ``view``, a view code: see :func:`read_launch_code`).

    Raises ValueError for an invalid user, path, ttl or a too-short secret.
    """
    key = _check_secret(secret)
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = time.time() if now is None else now
    claims = {
        "v": _VERSION,
        "u": check_username(user),
        "p": check_notebook_path(path),
        "n": secrets.token_urlsafe(16),
        "iat": round(issued, 3),
        "exp": round(issued + ttl_seconds, 3),
    }
    body = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_signature(key, body, _VIEW_CONTEXT if view else _SIGNING_CONTEXT)}"


def read_launch_code(secret: str, code: str, *, view: bool = False) -> LaunchClaims:
    """The claims of a correctly signed code (expiry NOT checked); else ForgedLaunchCode.

    A launch code is not a view code and the other way round (``view`` says which is
    expected): each is signed in its own context.
    """
    key = _check_secret(secret)
    body, dot, signature = code.partition(".")
    if not body.isascii():
        raise ForgedLaunchCode("not a code")
    expected = _signature(key, body, _VIEW_CONTEXT if view else _SIGNING_CONTEXT)
    if (
        not dot
        or not body
        or not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode("ascii"))
    ):
        raise ForgedLaunchCode("bad signature")
    try:
        raw = json.loads(_b64decode(body))
        if raw["v"] != _VERSION:
            raise ValueError("unknown version")
        return LaunchClaims(
            user=check_username(str(raw["u"])),
            path=check_notebook_path(str(raw["p"])),
            nonce=str(raw["n"]),
            issued_at=float(raw["iat"]),
            expires_at=float(raw["exp"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ForgedLaunchCode("malformed claims") from exc


class UsedCodes(Protocol):
    """Where a verifier records redeemed nonces (memory, or a file that outlives it)."""

    def claim(self, nonce: str, expires_at: float, now: float) -> bool:
        """Record ``nonce``; False if it was already recorded (and has not expired)."""
        ...


class NonceLedger:
    """Nonces already redeemed, in this process's memory, each remembered until its code
    expires (then forgotten)."""

    def __init__(self) -> None:
        self._expiries: dict[str, float] = {}

    def claim(self, nonce: str, expires_at: float, now: float) -> bool:
        """Record ``nonce``; False if it was already recorded (and has not expired)."""
        self._expiries = {n: e for n, e in self._expiries.items() if e > now}
        if nonce in self._expiries:
            return False
        self._expiries[nonce] = expires_at
        return True

    def __len__(self) -> int:
        return len(self._expiries)


class LaunchCodeVerifier:
    """Redeems codes at the Hub: signature, expiry, lifetime cap, start time, single use.

    ``used`` records redeemed nonces; by default this process's memory, and then
    ``not_before`` must be when the process started: codes issued earlier may already
    have been redeemed by a previous process whose memory is gone. With a ledger that
    outlives the process (a file), ``not_before`` can be 0: an unused code issued before
    a restart still works, a used one stays used. ``max_ttl_seconds`` refuses codes an
    issuer made too long-lived by mistake.
    """

    def __init__(
        self,
        secret: str,
        *,
        not_before: float,
        max_ttl_seconds: float = 600.0,
        clock: Clock = time.time,
        used: UsedCodes | None = None,
    ) -> None:
        _check_secret(secret)
        self._secret = secret
        self._not_before = not_before
        self._max_ttl = max_ttl_seconds
        self._clock = clock
        self._ledger: UsedCodes = used if used is not None else NonceLedger()

    def redeem(self, code: str) -> LaunchClaims:
        """The claims of a valid, unused code, marking it used; else a LaunchCodeError."""
        claims = read_launch_code(self._secret, code)
        now = self._clock()
        if claims.expires_at - claims.issued_at > self._max_ttl:
            raise ForgedLaunchCode("lifetime above the accepted maximum")
        if now >= claims.expires_at or claims.issued_at < self._not_before:
            raise ExpiredLaunchCode("expired")
        if not self._ledger.claim(claims.nonce, claims.expires_at, now):
            raise ReusedLaunchCode("already used")
        return claims


def notebook_lab_path(user: str, path: str, base_url: str = "/") -> str:
    """The JupyterLab path (no host) that opens ``path`` in ``user``'s default server."""
    return f"{base_url.rstrip('/')}/user/{quote(user)}/lab/tree/{quote(path)}"


@dataclass(frozen=True)
class LaunchLink:
    """A one-time URL for the iframe and when it stops working."""

    url: str
    expires_at: datetime


class _LinkIssuer:
    """Signs codes with ``secret`` into links under ``base_url``, valid ``ttl_seconds``."""

    def __init__(
        self,
        secret: str,
        base_url: str,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        _check_secret(secret)
        self._secret = secret
        self._base_url = base_url.rstrip("/")
        self._ttl = ttl_seconds
        self._clock = clock

    def _link(self, user: str, path: str, *, view: bool, url: Callable[[str], str]) -> LaunchLink:
        now = self._clock()
        code = issue_launch_code(
            self._secret, user, path, ttl_seconds=self._ttl, now=now, view=view
        )
        return LaunchLink(url=url(code), expires_at=datetime.fromtimestamp(now + self._ttl, UTC))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r}, ttl={self._ttl})"


class LaunchLinkIssuer(_LinkIssuer):
    """Makes launch links for the Hub at its public URL (used by consumers and gateway)."""

    def link(self, user: str, path: str) -> LaunchLink:
        """A fresh single-use link that logs the browser in as ``user`` and opens ``path``."""
        return self._link(
            user, path, view=False, url=lambda code: f"{self._base_url}{LAUNCH_PATH}?code={code}"
        )


class ViewLinkIssuer(_LinkIssuer):
    """Makes links to the read-only view of a notebook that the gateway at its public URL
    serves (``open`` with ``mode: view``)."""

    def link(self, user: str, path: str) -> LaunchLink:
        """A link to the view of the latest version of ``path`` of Hub user ``user``,
        usable (also more than once: a view logs nobody in) until it expires."""
        return self._link(
            user, path, view=True, url=lambda code: f"{self._base_url}{VIEW_PATH}{code}"
        )


class _LaunchSettings(Protocol):
    hub_public_url: str
    launch_code_ttl_seconds: float

    @property
    def launch_secret(self) -> SecretStr: ...


def view_link_issuer(settings: _LaunchSettings, gateway_public_url: str) -> ViewLinkIssuer | None:
    """The issuer of view links to the gateway at ``gateway_public_url``, or None when
    no launch secret or no gateway URL is configured."""
    secret = settings.launch_secret.get_secret_value()
    if not secret or not gateway_public_url:
        return None
    return ViewLinkIssuer(secret, gateway_public_url, ttl_seconds=settings.launch_code_ttl_seconds)


def launch_link_issuer(
    settings: _LaunchSettings, hub_public_url: str | None = None
) -> LaunchLinkIssuer | None:
    """The issuer the settings describe (for the Hub at ``hub_public_url``, by default
    the settings' own), or None when no launch secret is configured."""
    secret = settings.launch_secret.get_secret_value()
    if not secret:
        return None
    return LaunchLinkIssuer(
        secret,
        hub_public_url or settings.hub_public_url,
        ttl_seconds=settings.launch_code_ttl_seconds,
    )
