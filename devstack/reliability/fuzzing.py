"""Generated and hand-made hostile HTTP requests against the gateway.

:func:`fuzz_openapi` drives schemathesis from the gateway's own ``/openapi.json``
(positive and negative generation, every operation but the endless event stream);
:data:`HOSTILE_REQUESTS` are the cases generators rarely reach: broken and deeply
nested JSON, oversized bodies, hostile paths, usernames and headers. Both record the
status of every answer; the scenario then demands that none is 5xx.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

_SKIP_MEDIA_TYPES = ("text/event-stream",)  # a stream never ends: not a request/answer


@dataclass
class FuzzReport:
    """Statuses seen, plus a reproduction of each server error (first few only)."""

    statuses: Counter[int] = field(default_factory=Counter)
    not_sendable: int = 0  # generated requests the HTTP client itself refused to send
    server_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        """Requests answered (any status, ``0`` meaning no answer)."""
        return sum(self.statuses.values())

    def record(self, status: int, reproduce: str) -> None:
        """Count ``status``; keep ``reproduce`` when it is a 5xx or no answer (0)."""
        self.statuses[status] += 1
        if (status >= 500 or status == 0) and len(self.server_errors) < 20:
            self.server_errors.append(f"{status}: {reproduce[:500]}")

    def bad(self) -> int:
        """Answers that were 5xx or missing."""
        return sum(n for s, n in self.statuses.items() if s >= 500 or s == 0)


def fuzz_openapi(gateway_url: str, app_key: str, requests: int) -> FuzzReport:
    """Send at least ``requests`` schemathesis-generated requests (blocking; run it in a
    thread). Operations and modes (positive, negative) take turns in rounds."""
    import hypothesis
    import requests as http
    import schemathesis
    from schemathesis import GenerationMode

    schema: Any = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json", timeout=30)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if not any(m in json.dumps(result.ok().definition.raw) for m in _SKIP_MEDIA_TYPES)
    ]
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    per_run = max(10, requests // (2 * len(operations)))
    report = FuzzReport()
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {app_key}"}
    with http.Session() as session:
        for _round in range(20):  # bounded: the target is normally met in round one
            for operation in operations:
                for mode in modes:

                    @hypothesis.settings(
                        max_examples=per_run,
                        deadline=None,
                        database=None,
                        phases=[hypothesis.Phase.generate],
                        suppress_health_check=list(hypothesis.HealthCheck),
                    )
                    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                    def send(case: Any) -> None:
                        try:
                            response = case.call(
                                base_url=gateway_url, session=session, headers=headers, timeout=15
                            )
                        except (ValueError, http.exceptions.InvalidHeader, UnicodeError):
                            report.not_sendable += 1
                            return
                        except http.RequestException as exc:
                            report.record(0, f"{type(exc).__name__}: {case.as_curl_command()}")
                            return
                        report.record(response.status_code, case.as_curl_command())

                    try:
                        with hypothesis.reporting.with_reporter(_quiet):
                            send()
                    except hypothesis.errors.Unsatisfiable:
                        continue  # e.g. no negative variant of an operation without inputs
            if report.requests >= requests:
                break
    report.seconds = time.monotonic() - started
    return report


def _quiet(_message: object) -> None:
    """Hypothesis reporter that prints nothing (seeds of unsatisfiable runs are noise)."""


@dataclass(frozen=True)
class HostileRequest:
    """One hand-made request; ``path`` is sent as given (already percent-encoded)."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    authenticated: bool = True


def _post(
    name: str, body: bytes | dict[str, Any], path: str = "/v1/commands", **headers: str
) -> HostileRequest:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return HostileRequest(name, "POST", path, raw, {"Content-Type": "application/json", **headers})


def _get(name: str, path: str, **headers: str) -> HostileRequest:
    return HostileRequest(name, "GET", path, headers=headers)


_NIL = "/v1/commands/00000000-0000-0000-0000-000000000000"
_NASTY_USERS = [
    "../admin", "a" * 10_000, "Robert'); DROP TABLE command;--", "nul\u0000byte", "<script>",
    "", " ", "ADMIN", "\u00fc", "a/b", "%2e%2e", "\ud83d\ude00", "-", ".hidden",
]  # fmt: skip
_NASTY_PATHS = [
    "../../etc/passwd.ipynb", "/abs.ipynb", "a/../../b.ipynb", "nul\u0000.ipynb",
    "x" * 5000 + ".ipynb", "a\\b.ipynb", ".ssh/keys.ipynb", "", "dir/", "con:.ipynb",
    "a" + "/b" * 2000 + ".ipynb",
]  # fmt: skip
HOSTILE_REQUESTS: list[HostileRequest] = [
    _post("truncated JSON", b'{"type": "ensure-user", "u'),
    _post("invalid UTF-8", b"\xff\xfe{}"),
    _post("JSON array", b"[1, 2, 3]"),
    _post("JSON null", b"null"),
    _post("huge number", b"1e999999"),
    _post("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    _post("deep nesting in a field", b'{"user": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
    _post("2 MiB body", b'{"x": "' + b"a" * 2**21 + b'"}'),
    _post("20 MiB body", b"[" + b"1," * 10 * 2**20 + b"1]"),
    HostileRequest("text/plain body", "POST", "/v1/commands", b"ensure-user alice"),
    _post("unknown type", {"type": "rm-rf", "user": "a"}),
    HostileRequest("no auth", "POST", "/v1/commands", b"{}", authenticated=False),
    HostileRequest(
        "long bearer",
        "GET",
        _NIL,
        headers={"Authorization": "Bearer " + "k" * 7000},
        authenticated=False,
    ),
    HostileRequest(
        "basic auth",
        "GET",
        _NIL,
        headers={"Authorization": "Basic Zm9vOmJhcg=="},
        authenticated=False,
    ),
    _post(
        "bad idempotency key",
        {"type": "ensure-user", "user": "idem"},
        **{"Idempotency-Key": "\t" * 300},
    ),
    _get("bad correlation id", "/healthz", **{"X-Correlation-ID": "x" * 5000}),
    _get("dot-dot command id", "/v1/commands/..%2F..%2Fetc%2Fpasswd"),
    _get("long command id", "/v1/commands/" + "a" * 6000),
    _get("nul in path", "/v1/commands/%00"),
    _get("invalid percent-encoding", "/v1/commands/%ff%fe%zz"),
    _get("wait=nan", _NIL + "?wait=nan"),
    _get("wait=inf", _NIL + "?wait=1e309"),
    _get("wait=-1", _NIL + "?wait=-1"),
    _get("dot-dot user", "/v1/users/..%2Fadmin/notebooks"),
    _get("hostile versions path", "/v1/users/alice/versions?path=..%2F..%2Fetc%2Fpasswd"),
    _get("nul versions path", "/v1/users/alice/versions?path=%00.ipynb"),
    _get("bad version id", "/v1/versions/not-a-uuid"),
    _get("double slashes", "//v1//commands"),
    _get("event stream bad types", "/v1/events?types=%00,../x"),
    HostileRequest("PUT on commands", "PUT", "/v1/commands", b"{}"),
    HostileRequest("DELETE on commands", "DELETE", "/v1/commands"),
    _post("launch hostile path", {"path": "../../x.ipynb"}, "/v1/users/alice/launch"),
    _post("launch hostile user", {"path": "a.ipynb"}, "/v1/users/..%2Froot/launch"),
    _post("launch deep nesting", b"[" * 100_000 + b"]" * 100_000, "/v1/users/alice/launch"),
    *(
        _post(f"hostile user {i}", {"type": "ensure-user", "user": u})
        for i, u in enumerate(_NASTY_USERS)
    ),
    *(
        _post(f"hostile path {i}", {"type": "save", "user": "alice", "path": p})
        for i, p in enumerate(_NASTY_PATHS)
    ),
]


async def send_hostile(
    gateway_url: str, app_key: str, cases: list[HostileRequest]
) -> tuple[FuzzReport, dict[str, int]]:
    """Send every case once; the report and each case's status (0: no answer)."""
    report = FuzzReport()
    by_case: dict[str, int] = {}
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for case in cases:
            headers = dict(case.headers)
            if case.authenticated:
                headers["Authorization"] = f"Bearer {app_key}"
            url = URL(gateway_url + case.path, encoded=True)
            try:
                async with http.request(
                    case.method, url, data=case.body, headers=headers
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            by_case[case.name] = status
            report.record(status, f"{case.name}: {case.method} {case.path[:200]}")
    report.seconds = time.monotonic() - started
    return report, by_case
