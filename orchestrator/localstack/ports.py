"""Loopback ports for local infrastructure and waiting until an HTTP endpoint answers."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from orchestrator.localstack.process import ManagedProcess, StartupError

_POLL_INTERVAL_SECONDS = 0.1
_REQUEST_TIMEOUT_SECONDS = 2.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_status(url: str, *, headers: Mapping[str, str] | None = None) -> int | None:
    """GET ``url`` and return its HTTP status, or ``None`` if nothing answered."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=_REQUEST_TIMEOUT_SECONDS) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for_http(
    url: str,
    timeout: float,
    *,
    process: ManagedProcess | None = None,
    expect_status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll ``url`` until it answers (with ``expect_status`` if given) or raise ``StartupError``.

    Fails early when ``process`` (the server behind the URL) exits; the error then names
    that process's log file and ends with its last lines.
    """
    deadline = time.monotonic() + timeout
    last_status: int | None = None
    while True:
        if process is not None and not process.is_running():
            raise StartupError(process.describe_failure(f"exited while waiting for {url}"))
        last_status = http_status(url, headers=headers)
        if last_status is not None and expect_status in (None, last_status):
            return
        if time.monotonic() >= deadline:
            problem = f"did not answer {url} within {timeout:.0f} s (last status {last_status})"
            if process is not None:
                raise StartupError(process.describe_failure(problem))
            raise StartupError(problem)
        time.sleep(_POLL_INTERVAL_SECONDS)
