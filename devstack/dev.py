"""``python -m devstack`` (what ``make run`` runs): the whole stack until Ctrl-C.

Prefers the well-known ports (gateway 8040, Hub 8000, demo app 8050) and takes free
ones when those are taken, also when another process takes one while this stack starts:
every port is either held (the demo app's socket, chosen before the Hub is configured
so that the allowed app origin is the demo's real one) or bound with a retry on another
port. The banner names only ports the running processes hold. The orchestrator
database and the demo app's key survive restarts; the broker's and the Hub's state are
fresh each time. A child that dies is reported and restarted (``devstack.supervisor``).

While it runs, ``STATE/orchestrator.env`` (0600) holds the settings an operator's CLI
needs; ``orchestrator env`` prints them as exports, and the CLI reads the file by itself
when run from the repository root.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from devstack.broker_cluster import RabbitMQCluster
from devstack.demo.launcher import DEMO_APP_NAME, demo_origin, start_demo
from devstack.ports import hold_port, http_answer
from devstack.private_files import write_private
from devstack.process import PortInUseError, StartupError
from devstack.stack import LocalStack, StackOptions
from devstack.supervisor import GaveUp, Supervisor
from runtime.settings import DEV_ENV_FILE, ENV_FILE_NAME

GATEWAY_PORT = 8040
HUB_PORT = 8000
DEMO_PORT = 8050
DEMO_KEY_FILE = "demo-app-key"
# The demo app's culling policy, short enough to watch: idle for two minutes, then a
# 30 s warning (the consumers look every 10 s). Other apps keep the defaults.
DEMO_IDLE_TIMEOUT_SECONDS = 120
DEMO_CULL_GRACE_SECONDS = 30
CULL_INTERVAL_SECONDS = 10
KEPT_ACROSS_RESTARTS = ("orchestrator.db", DEMO_KEY_FILE)
SUPERVISE_EVERY_SECONDS = 1.0
# What the operator CLI needs (runtime.settings.OperatorSettings), nothing else.
OPERATOR_SETTINGS = (
    "ORCH_DATABASE_URL",
    "ORCH_AMQP_URL",
    "ORCH_PARTITIONS",
    "ORCH_MANAGEMENT_URL",
    "ORCH_MANAGEMENT_USER",
    "ORCH_MANAGEMENT_PASSWORD",
)


def _fresh_state(state_dir: Path) -> None:
    """Remove everything but the orchestrator database and the demo key from ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for child in state_dir.iterdir():
        if child.name.startswith(KEPT_ACROSS_RESTARTS):
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def demo_key(stack: LocalStack) -> str:
    """The demo app's key: the one kept from an earlier run if the gateway still accepts
    it, else a new one (kept for the next run, 0600)."""
    path = stack.state_dir / DEMO_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        probe = f"{stack.gateway_url}/v1/commands/{uuid.uuid4()}"
        answer = http_answer(probe, headers={"Authorization": f"Bearer {key}"})
        if answer is not None and answer[0] == 404:  # authenticated; no such command
            return key
    key = stack.issue_app_key(DEMO_APP_NAME)
    write_private(path, key + "\n")
    return key


def demo_culling(stack: LocalStack) -> None:
    """Give the demo app its short culling policy (see ``DEMO_IDLE_TIMEOUT_SECONDS``)."""
    stack.orchestrator_cli(
        "servers", "policy", DEMO_APP_NAME,
        "--idle-timeout", str(DEMO_IDLE_TIMEOUT_SECONDS),
        "--grace", str(DEMO_CULL_GRACE_SECONDS),
    )  # fmt: skip


def write_env_file(stack: LocalStack) -> Path:
    """``STATE/orchestrator.env``: the operator settings of this stack as shell exports."""
    settings = stack.settings_env()
    names = [*OPERATOR_SETTINGS, *(["ORCH_HUBS"] if "ORCH_HUBS" in settings else [])]
    lines = [f"export {name}={shlex.quote(settings[name])}" for name in names]
    lines.append(f"export ORCH_GATEWAY={shlex.quote(stack.gateway_url)}")
    path = stack.state_dir / ENV_FILE_NAME
    write_private(path, "\n".join(lines) + "\n")
    return path


def banner(stack: LocalStack, key: str, demo_url: str | None, env_file: Path) -> str:
    """What a new user needs: URLs, the demo key, and commands to paste."""
    lines = [
        "",
        "The notebook orchestrator is running (Ctrl-C stops everything).",
        f"  Gateway API        {stack.gateway_url}   (OpenAPI: {stack.gateway_url}/openapi.json)",
        f"  JupyterHub         {stack.hub.url}/hub/",
        f"  RabbitMQ admin     {stack.broker.management_url}/   "
        f"(user {stack.broker.user}, password in {env_file})",
        f"  RabbitMQ AMQP      amqp://127.0.0.1:{stack.broker.amqp_port}/",
    ]
    if isinstance(stack.broker, RabbitMQCluster):
        ports = ", ".join(str(node.amqp_port) for node in stack.broker.nodes)
        lines.append(f"  RabbitMQ cluster   {len(stack.broker.nodes)} nodes, AMQP ports {ports}")
    for index, hub in enumerate(stack.extra_hubs, start=2):
        lines.append(f"  JupyterHub {index}       {hub.url}/hub/   (orchestrator hubs list)")
    for url in stack.gateway_urls[1:]:
        lines.append(f"  Another gateway    {url}")
    if stack.postgres is not None:
        lines.append(
            "  Database           PostgreSQL (private server, ORCH_DATABASE_URL in env file)"
        )
    if demo_url:
        lines += [
            f"  Demo app           {demo_url}/",
            f"  Idle culling       demo servers idle {DEMO_IDLE_TIMEOUT_SECONDS} s are warned, "
            f"then stopped {DEMO_CULL_GRACE_SECONDS} s later (orchestrator servers list)",
        ]
    if stack.web_tls is not None:
        lines.append(
            "  Cross-site         the demo and the Hub serve HTTPS with a certificate of this "
            f"stack's CA: trust {stack.web_tls.ca_file} in the browser"
        )
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
        f"  Consumer metrics   {_consumer_metrics(stack)}",
        "",
        *_cli_hint(env_file),
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


def _cli_hint(env_file: Path) -> list[str]:
    """How to point the operator CLI at this stack."""
    found = env_file == DEV_ENV_FILE.resolve()
    return [
        "Operator CLI: "
        + ("from this folder it finds this stack by itself; elsewhere:" if found else ""),
        f'  eval "$(orchestrator env --file {env_file})"',
    ]


def _consumer_metrics(stack: LocalStack) -> str:
    ports = [stack.consumer_metrics_ports[i] for i in range(len(stack.consumers))]
    return "  ".join(f"http://127.0.0.1:{port}/metrics" for port in ports)


def run_dev(
    state_dir: str,
    *,
    consumers: int = 2,
    broker_nodes: int = 1,
    gateways: int = 1,
    postgres: bool = False,
    hubs: int = 1,
    cross_site: bool = False,
) -> int:
    """Start the stack (and the demo app), print how to use it, supervise until Ctrl-C.

    ``broker_nodes`` > 1 runs a RabbitMQ cluster, ``gateways`` > 1 extra gateways on
    ports of their own, ``postgres`` a private PostgreSQL for the database, ``hubs`` > 1
    that many JupyterHubs (users spread over them). ``cross_site`` serves the demo app
    at ``https://localhost:PORT``, another site than the Hub, which then serves HTTPS
    with partitioned cookies.
    """
    root = Path(state_dir).resolve()
    _fresh_state(root)
    try:
        demo_socket = hold_port(DEMO_PORT)
    except PortInUseError as exc:
        print(f"start-up failed: no port for the demo app ({exc})")
        return 1
    demo_port = demo_socket.getsockname()[1]
    demo_url = demo_origin(demo_port, cross_site=cross_site)
    options = StackOptions(
        consumers=consumers,
        gateway_port=GATEWAY_PORT,
        hub_port=HUB_PORT,
        app_origins=[demo_url],
        cross_site_origins=[demo_url] if cross_site else [],
        extra_env={"ORCH_CULL_INTERVAL_SECONDS": str(CULL_INTERVAL_SECONDS)},
        broker_nodes=broker_nodes,
        gateways=gateways,
        postgres=postgres,
        hubs=hubs,
    )
    stack = LocalStack(root, options)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    env_file: Path | None = None
    try:
        print("starting RabbitMQ, JupyterHub, gateway, consumers ...", flush=True)
        stack.start()
        key = demo_key(stack)
        demo_culling(stack)
        restart_demo = _demo_starter(stack, demo_socket, key, cross_site=cross_site)
        restart_demo()
        env_file = write_env_file(stack)
        print(banner(stack, key, demo_url, env_file), flush=True)
        supervisor = Supervisor(stack, restart_demo=restart_demo)
        while not stopped.wait(SUPERVISE_EVERY_SECONDS):
            supervisor.check()
        print("stopping ...", flush=True)
    except (StartupError, GaveUp) as exc:
        print(f"stopping: {exc}", flush=True)
        return 1
    finally:
        stack.stop()
        demo_socket.close()
        if env_file is not None:
            env_file.unlink(missing_ok=True)
    return 0


def _demo_starter(
    stack: LocalStack, listening: socket.socket, key: str, *, cross_site: bool
) -> Callable[[], None]:
    """Start (or start again) the demo app on the held socket with the kept key."""

    def start() -> None:
        for process in stack.extra_processes:
            process.stop()
        stack.extra_processes[:] = [start_demo(stack, listening, key, cross_site=cross_site)]

    return start
