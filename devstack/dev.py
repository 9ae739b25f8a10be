"""``python -m devstack`` (what ``make run`` runs): the whole stack until Ctrl-C.

Prefers the well-known ports (gateway 8040, Hub 8000, demo app 8050) and falls back
to free ones when taken. The orchestrator database survives restarts; the broker's
and the Hub's state are fresh each time.
"""

from __future__ import annotations

import shutil
import signal
import socket
import threading
from pathlib import Path

from devstack.demo.launcher import start_demo
from devstack.process import StartupError
from devstack.stack import LocalStack, StackOptions

GATEWAY_PORT = 8040
HUB_PORT = 8000
DEMO_PORT = 8050


def _port_if_free(port: int) -> int | None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def _fresh_state(state_dir: Path) -> None:
    """Remove everything but the orchestrator database from ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for child in state_dir.iterdir():
        if child.name.startswith("orchestrator.db"):
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def banner(stack: LocalStack, key: str, demo_url: str | None) -> str:
    """What a new user needs: URLs, the demo key, and commands to paste."""
    lines = [
        "",
        "The notebook orchestrator is running (Ctrl-C stops everything).",
        f"  Gateway API        {stack.gateway_url}   (OpenAPI: {stack.gateway_url}/openapi.json)",
        f"  JupyterHub         {stack.hub.url}/hub/",
        f"  RabbitMQ admin     {stack.broker.management_url}/   "
        f"(user {stack.broker.user}, password in {stack.state_dir}/rabbitmq/rabbitmq.conf)",
    ]
    if demo_url:
        lines.append(f"  Demo app           {demo_url}/")
    if stack.isolated:
        lines.append(
            "  Notebook users     each workspace's server and kernels run as its own account"
        )
    else:
        lines += [
            "",
            "  !! NOT ISOLATED: not started as root, so every notebook server and kernel runs",
            "  !! as this account and can read the database, the Hub config and every home.",
            "  !! Start `make run` as root for one system account per workspace.",
        ]
    lines += [
        f"  Logs               {stack.logs_dir}/",
        "",
        "Try it:",
        f"  export ORCH_GATEWAY={stack.gateway_url} ORCH_KEY={key}",
        '  curl -s -X POST "$ORCH_GATEWAY/v1/commands" -H "Authorization: Bearer $ORCH_KEY" \\',
        "       -H 'Content-Type: application/json' \\",
        """       -d '{"type": "open", "user": "alice", "path": "work/hello.ipynb"}'""",
        '  curl -s "$ORCH_GATEWAY/v1/commands/<id from above>?wait=30" '
        '-H "Authorization: Bearer $ORCH_KEY"',
        "",
    ]
    return "\n".join(lines)


def run_dev(state_dir: str, *, consumers: int = 2) -> int:
    """Start the stack (and the demo app), print how to use it, wait for Ctrl-C, stop."""
    root = Path(state_dir).resolve()
    _fresh_state(root)
    demo_port = _port_if_free(DEMO_PORT)
    options = StackOptions(
        consumers=consumers,
        gateway_port=_port_if_free(GATEWAY_PORT),
        hub_port=_port_if_free(HUB_PORT),
    )
    if demo_port is not None:
        options.app_origins = [f"http://127.0.0.1:{demo_port}"]
    stack = LocalStack(root, options)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        print("starting RabbitMQ, JupyterHub, gateway, consumers ...", flush=True)
        stack.start()
        key = stack.issue_app_key("demo")
        demo_url = _start_demo(stack, demo_port)
        print(banner(stack, key, demo_url), flush=True)
        stopped.wait()
        print("stopping ...", flush=True)
    except StartupError as exc:
        print(f"start-up failed: {exc}")
        return 1
    finally:
        stack.stop()
    return 0


def _start_demo(stack: LocalStack, port: int | None) -> str | None:
    if port is None:
        print(f"port {DEMO_PORT} is taken: the demo app is not started")
        return None
    stack.extra_processes.append(start_demo(stack, port))
    return f"http://127.0.0.1:{port}"
