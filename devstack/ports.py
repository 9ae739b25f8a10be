"""Loopback ports for local infrastructure and waiting until an HTTP endpoint answers."""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from devstack.process import (
    ManagedProcess,
    PortInUseError,
    StartupError,
    is_bind_failure,
)

_POLL_INTERVAL_SECONDS = 0.1
_REQUEST_TIMEOUT_SECONDS = 2.0
_LOWEST_PORT = 20000
_EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_BIND_ATTEMPTS = 5

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = open(_EPHEMERAL_RANGE_FILE).read().split()  # noqa: SIM115
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago, for a child process to bind.

    The port is drawn at random from outside the kernel's ephemeral range, so no
    outgoing connection (which takes its local port from that range) and no
    ``bind(0)`` elsewhere can take it in the meantime, and this process never hands
    the same port out twice. Another process may still pick it: whoever binds it
    must retry on a bind failure (:func:`start_retrying_ports`).
    """
    ephemeral_low, ephemeral_high = _ephemeral_range()
    candidates = range(_LOWEST_PORT, ephemeral_low)
    if len(candidates) < 1000:  # an unusual ephemeral range: take ports above it instead
        candidates = range(ephemeral_high + 1, 65536)
    with _handed_out_lock:
        while True:
            port = random.choice(candidates)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port


def start_retrying_ports(
    start: Callable[[], None], choose_ports: Callable[[], None], *, attempts: int = _BIND_ATTEMPTS
) -> None:
    """Run ``start``; when it fails because a port was taken, ``choose_ports`` anew and retry.

    ``start`` must clean up after itself on failure and raise :class:`PortInUseError`
    only for a bind failure; every other error (and the last bind failure) propagates.
    """
    for attempt in range(1, attempts + 1):
        try:
            start()
            return
        except PortInUseError:
            if attempt == attempts:
                raise
            choose_ports()


def http_answer(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[int, str] | None:
    """GET ``url`` and return its HTTP status and body, or ``None`` if nothing answered.

    ``ssl_context`` is what an ``https`` URL is verified with (default: the system's CAs).
    """
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(
            request, timeout=_REQUEST_TIMEOUT_SECONDS, context=ssl_context
        ) as response:
            status: int = response.status
            return status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, OSError):
        return None


def wait_for_http(
    url: str,
    timeout: float,
    *,
    process: ManagedProcess | None = None,
    expect_status: int | None = None,
    headers: Mapping[str, str] | None = None,
    proof: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Poll ``url`` until it answers (with ``expect_status`` if given) or raise ``StartupError``.

    With ``proof``, only an answer whose body contains it counts: a per-start value
    (a node name, a nonce) proves that the process we started answered, not another
    one holding the same port. Fails early when ``process`` (the server behind the
    URL) exits; the error then names that process's log file and ends with its last
    lines, and is a :class:`PortInUseError` when that log shows a bind failure.
    """
    deadline = time.monotonic() + timeout
    last_status: int | None = None
    while True:
        if process is not None and not process.is_running():
            raise process.startup_error(f"exited while waiting for {url}")
        if process is not None and is_bind_failure(process.log_since_start()):
            # Some servers (configurable-http-proxy under the Hub) log the failure and
            # live on without the port: waiting longer cannot help.
            raise process.startup_error(f"could not bind a port while waiting for {url}")
        answer = http_answer(url, headers=headers, ssl_context=ssl_context)
        last_status = None if answer is None else answer[0]
        if (
            answer is not None
            and expect_status in (None, last_status)
            and (proof is None or proof in answer[1])
        ):
            return
        if time.monotonic() >= deadline:
            problem = f"did not answer {url} within {timeout:.0f} s (last status {last_status})"
            if process is not None:
                raise process.startup_error(problem)
            raise StartupError(problem)
        time.sleep(_POLL_INTERVAL_SECONDS)


def hold_port(preferred: int | None = None) -> socket.socket:
    """A listening socket on 127.0.0.1, on ``preferred`` if it is free, else on a free port.

    The caller keeps it (the port cannot be taken meanwhile) and hands it to the process
    that serves on it; its port is ``sock.getsockname()[1]``.
    """
    for port in ([preferred] if preferred else []) + [free_port() for _ in range(_BIND_ATTEMPTS)]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    raise PortInUseError(f"no free port to hold after {_BIND_ATTEMPTS} attempts")
