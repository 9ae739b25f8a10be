"""Starting the demo app next to a running :class:`LocalStack` (``make run``, tests)."""

from __future__ import annotations

import os
import socket
import sys

from devstack.ports import wait_for_http
from devstack.process import ManagedProcess, devstack_python_env
from devstack.stack import LocalStack

DEMO_APP_NAME = "demo"


def demo_origin(port: int) -> str:
    """The demo's browser origin; it must be one of the stack's ``app_origins``."""
    return f"http://127.0.0.1:{port}"


def start_demo(
    stack: LocalStack, listening: socket.socket, key: str | None = None, timeout: float = 60
) -> ManagedProcess:
    """Start the demo app serving on the held ``listening`` socket; return once it answers.

    ``key`` is the demo app's key (a new one is issued when None). The caller stops
    the returned process. Raises ValueError if the demo's origin is not an allowed app
    origin of the stack (Jupyter would refuse to be framed).
    """
    port = listening.getsockname()[1]
    if demo_origin(port) not in stack.options.app_origins:
        raise ValueError(
            f"{demo_origin(port)} is not in the stack's app_origins {stack.options.app_origins}"
        )
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
    process = ManagedProcess(
        "demo",
        [sys.executable, "-m", "devstack.demo"],
        log_path=stack.logs_dir / "demo.log",
        env=devstack_python_env(env),
        pass_fds=[listening.fileno()],
    )
    process.start()
    try:
        wait_for_http(f"{demo_origin(port)}/healthz", timeout, process=process, expect_status=200)
    except BaseException:
        process.stop()
        raise
    return process
