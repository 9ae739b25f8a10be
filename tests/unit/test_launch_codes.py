"""Launch codes: signed, bound to one user and path, short-lived, redeemable once."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hub_service.launch.used_codes import UsedCodesFile
from schemas.launch_codes import (
    ExpiredLaunchCode,
    ForgedLaunchCode,
    LaunchCodeVerifier,
    LaunchLinkIssuer,
    NonceLedger,
    ReusedLaunchCode,
    ViewLinkIssuer,
    issue_launch_code,
    notebook_lab_path,
    read_launch_code,
)

SECRET = "s" * 64
OTHER_SECRET = "t" * 64
T0 = 1_800_000_000.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: FakeClock, not_before: float = T0 - 60) -> LaunchCodeVerifier:
    return LaunchCodeVerifier(SECRET, not_before=not_before, max_ttl_seconds=600, clock=clock)


def test_a_fresh_code_is_redeemed_once_with_its_user_and_path() -> None:
    clock = FakeClock(T0)
    hub = verifier(clock)
    code = issue_launch_code(SECRET, "alice", "work/a.ipynb", ttl_seconds=120, now=T0)
    claims = hub.redeem(code)
    assert (claims.user, claims.path) == ("alice", "work/a.ipynb")
    assert claims.expires_at == T0 + 120
    with pytest.raises(ReusedLaunchCode) as refused:
        hub.redeem(code)
    assert refused.value.status == 410


def test_two_codes_for_the_same_notebook_are_independent() -> None:
    hub = verifier(FakeClock(T0))
    first = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    second = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    assert first != second
    hub.redeem(first)
    assert hub.redeem(second).user == "alice"


def test_a_code_expires_after_its_ttl() -> None:
    clock = FakeClock(T0)
    hub = verifier(clock)
    code = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    clock.now = T0 + 120
    with pytest.raises(ExpiredLaunchCode) as refused:
        hub.redeem(code)
    assert refused.value.status == 410
    assert "expired" in refused.value.explanation


def test_a_code_issued_before_the_hub_started_is_refused() -> None:
    clock = FakeClock(T0)
    hub = verifier(clock, not_before=T0)
    code = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0 - 1)
    with pytest.raises(ExpiredLaunchCode):
        hub.redeem(code)


def test_a_code_living_longer_than_the_hub_accepts_is_refused() -> None:
    hub = verifier(FakeClock(T0))
    code = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=3600, now=T0)
    with pytest.raises(ForgedLaunchCode):
        hub.redeem(code)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda code: code[:-2] + ("AA" if not code.endswith("AA") else "BB"),
        lambda code: code.split(".")[0],
        lambda code: "",
        lambda code: "not-a-code",
        lambda code: issue_launch_code(OTHER_SECRET, "alice", "a.ipynb", ttl_seconds=60, now=T0),
    ],
    ids=["signature", "unsigned", "empty", "garbage", "other-secret"],
)
def test_forged_codes_are_refused(tamper: object) -> None:
    code = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    assert callable(tamper)
    with pytest.raises(ForgedLaunchCode) as refused:
        verifier(FakeClock(T0)).redeem(tamper(code))
    assert refused.value.status == 403


def test_changing_the_user_in_the_claims_breaks_the_signature() -> None:
    code = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    body, signature = code.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["u"] = "mallory"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(ForgedLaunchCode):
        read_launch_code(SECRET, f"{forged_body}.{signature}")


def test_codes_are_only_issued_for_valid_names_and_strong_secrets() -> None:
    with pytest.raises(ValueError):
        issue_launch_code(SECRET, "Not Valid", "a.ipynb", ttl_seconds=60)
    with pytest.raises(ValueError):
        issue_launch_code(SECRET, "alice", "../etc/passwd.ipynb", ttl_seconds=60)
    with pytest.raises(ValueError):
        issue_launch_code("short", "alice", "a.ipynb", ttl_seconds=60)
    with pytest.raises(ValueError):
        issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=0)


def test_the_code_carries_no_secret() -> None:
    code = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    assert SECRET not in code
    assert "s" * 16 not in base64.urlsafe_b64decode(code.split(".")[0] + "==").decode()


def test_the_nonce_ledger_forgets_expired_nonces() -> None:
    ledger = NonceLedger()
    assert ledger.claim("n1", expires_at=T0 + 10, now=T0)
    assert not ledger.claim("n1", expires_at=T0 + 10, now=T0 + 5)
    assert ledger.claim("n2", expires_at=T0 + 30, now=T0 + 11)
    assert len(ledger) == 1


def test_the_issuer_makes_hub_launch_links_with_their_expiry() -> None:
    clock = FakeClock(T0)
    issuer = LaunchLinkIssuer(SECRET, "http://127.0.0.1:8000/", ttl_seconds=90, clock=clock)
    link = issuer.link("alice", "work/my notebook.ipynb")
    parts = urlsplit(link.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:8000", "/hub/launch")
    claims = read_launch_code(SECRET, parse_qs(parts.query)["code"][0])
    assert (claims.user, claims.path) == ("alice", "work/my notebook.ipynb")
    assert link.expires_at.timestamp() == pytest.approx(T0 + 90)
    assert SECRET not in repr(issuer)


def test_the_lab_path_quotes_the_notebook_path() -> None:
    assert (
        notebook_lab_path("alice", "work/my notebook.ipynb", "/")
        == "/user/alice/lab/tree/work/my%20notebook.ipynb"
    )


def test_used_codes_in_a_file_stay_used_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "used.sqlite"
    clock = FakeClock(T0)
    first_life = UsedCodesFile(path)
    hub = LaunchCodeVerifier(SECRET, not_before=0, clock=clock, used=first_life)
    used = issue_launch_code(SECRET, "alice", "a.ipynb", ttl_seconds=120, now=T0)
    unused = issue_launch_code(SECRET, "alice", "b.ipynb", ttl_seconds=120, now=T0)
    hub.redeem(used)
    first_life.close()
    clock.now = T0 + 30
    second_life = UsedCodesFile(path)  # the Hub restarted
    restarted = LaunchCodeVerifier(SECRET, not_before=0, clock=clock, used=second_life)
    with pytest.raises(ReusedLaunchCode):
        restarted.redeem(used)
    assert restarted.redeem(unused).path == "b.ipynb"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_used_codes_file_forgets_expired_nonces(tmp_path: Path) -> None:
    ledger = UsedCodesFile(tmp_path / "used.sqlite")
    assert ledger.claim("n1", expires_at=T0 + 10, now=T0)
    assert not ledger.claim("n1", expires_at=T0 + 10, now=T0 + 5)
    assert ledger.claim("n1", expires_at=T0 + 40, now=T0 + 11)  # expired: a new code
    assert not ledger.claim("n1", expires_at=T0 + 40, now=T0 + 12)


def test_a_view_code_is_no_launch_code_and_a_launch_code_no_view_code() -> None:
    view = issue_launch_code(SECRET, "ann-0123456789", "a.ipynb", ttl_seconds=60, view=True)
    launch = issue_launch_code(SECRET, "ann-0123456789", "a.ipynb", ttl_seconds=60)
    assert read_launch_code(SECRET, view, view=True).path == "a.ipynb"
    with pytest.raises(ForgedLaunchCode):
        read_launch_code(SECRET, view)  # the Hub's authenticator would refuse it
    with pytest.raises(ForgedLaunchCode):
        read_launch_code(SECRET, launch, view=True)  # and the gateway's views a launch code
    link = ViewLinkIssuer(SECRET, "http://gw.test/", ttl_seconds=60).link("ann-01", "d/a.ipynb")
    assert link.url.startswith("http://gw.test/v1/views/")
    code = link.url.rsplit("/", 1)[1]
    assert read_launch_code(SECRET, code, view=True).user == "ann-01"


@pytest.mark.parametrize("code", ["[»\x82", "é.abc", "abc.é"])
def test_a_code_with_characters_no_code_has_is_forged_not_an_error(code: str) -> None:
    for view in (False, True):
        with pytest.raises(ForgedLaunchCode):
            read_launch_code(SECRET, code, view=view)
