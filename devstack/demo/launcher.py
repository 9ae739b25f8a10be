"""Starting the demo app next to a running :class:`LocalStack` (``make run``, tests)."""

from __future__ import annotations

import os
import socket
import sys

from devstack.ports import wait_for_http
from devstack.process import ManagedProcess, devstack_python_env
from devstack.stack import LocalStack

DEMO_APP_NAME = "demo"


def demo_origin(port: int, *, cross_site: bool = False) -> str:
    """The demo's browser origin; it must be one of the stack's ``app_origins``.

    Cross-site, it is ``https://localhost:PORT``: another site than the Hub's
    ``127.0.0.1`` to a browser.
    """
    return f"https://localhost:{port}" if cross_site else f"http://127.0.0.1:{port}"


def start_demo(
    stack: LocalStack,
    listening: socket.socket,
    key: str | None = None,
    timeout: float = 60,
    *,
    cross_site: bool = False,
) -> ManagedProcess:
    """Start the demo app serving on the held ``listening`` socket; return once it answers.

    ``key`` is the demo app's key (a new one is issued when None). With ``cross_site``
    it serves HTTPS (the stack's certificate) at :func:`demo_origin`. The caller stops
    the returned process. Raises ValueError if the demo's origin is not an allowed app
    origin of the stack (Jupyter would refuse to be framed), or not a cross-site one
    when ``cross_site``.
    """
    port = listening.getsockname()[1]
    origin = demo_origin(port, cross_site=cross_site)
    allowed = stack.options.cross_site_origins if cross_site else stack.options.app_origins
    if origin not in allowed:
        raise ValueError(f"{origin} is not in the stack's app origins {allowed}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(
        {
            "ORCH_DEMO_PORT": str(port),
            "ORCH_DEMO_SOCKET_FD": str(listening.fileno()),
            "ORCH_DEMO_APP_KEY": key or stack.issue_app_key(DEMO_APP_NAME),
            "ORCH_DEMO_GATEWAY_URL": stack.gateway_url,
            "ORCH_DEMO_LOG_JSON": "true",
        }
    )
    tls = stack.web_tls if cross_site else None
    if tls is not None:
        env["ORCH_DEMO_TLS_CERT_FILE"] = str(tls.cert_file)
        env["ORCH_DEMO_TLS_KEY_FILE"] = str(tls.key_file)
    process = ManagedProcess(
        "demo",
        [sys.executable, "-m", "devstack.demo"],
        log_path=stack.logs_dir / "demo.log",
        env=devstack_python_env(env),
        pass_fds=[listening.fileno()],
    )
    process.start()
    try:
        wait_for_http(
            f"{origin}/healthz",
            timeout,
            process=process,
            expect_status=200,
            ssl_context=None if tls is None else tls.client_context(),
        )
    except BaseException:
        process.stop()
        raise
    return process
