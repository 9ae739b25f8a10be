"""A private, throwaway RabbitMQ broker on loopback ports, run from the Debian package."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.metrics_tls import MetricsTls, issue_metrics_tls
from devstack.ports import free_port, start_retrying_ports, wait_for_http
from devstack.private_files import private_dir, write_private
from devstack.process import ManagedProcess, StartupError

RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
ENABLED_PLUGINS = "[rabbitmq_management,rabbitmq_prometheus,rabbitmq_consistent_hash_exchange].\n"
_GRACEFUL_STOP_SECONDS = 60.0
LOOPBACK_DISTRIBUTION = "-kernel inet_dist_use_interface {127,0,0,1}"
_NODE_CHECK_SECONDS = 0.2


@dataclass(frozen=True)
class SharedNodeSetup:
    """What the nodes of one cluster share: credentials, the Erlang cookie's home, epmd."""

    user: str
    password: str
    home: Path
    epmd_port: int


class RabbitMQBroker:
    """One RabbitMQ node with management and Prometheus, all state under ``state_dir/rabbitmq``.

    Management answers only its generated user; Prometheus only a scraper presenting
    the client certificate of :attr:`metrics_tls` (HTTPS, mutual TLS).

    Ports are chosen once, at construction, and kept for the object's lifetime, so
    ``restart`` brings the same node (same name, ports and data) back: durable queues
    and persistent messages survive it. ``stop`` is a fast teardown that also deletes
    the data. The node runs its own epmd on a private port, started and ended here.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        dir_name: str = "rabbitmq",
        shared: SharedNodeSetup | None = None,
    ) -> None:
        self.base_dir = state_dir.resolve() / dir_name
        # A node of a cluster (``shared``) uses the cluster's epmd, cookie and user.
        self._shared = shared
        # The node's only user, created at its first boot (no guest); kept across
        # restarts of this object's node, whose data keeps the user.
        self.user = shared.user if shared else "orchestrator"
        self.password = shared.password if shared else secrets.token_urlsafe(24)
        self.pid_file = self.base_dir / "rabbitmq.pid"
        self.mnesia_dir = self.base_dir / "mnesia"
        self._choose_ports()

    def _choose_ports(self) -> None:
        """Pick the node's ports (and so its name) and build its processes around them."""
        self.amqp_port = free_port()
        self.management_port = free_port()
        self.prometheus_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = self._shared.epmd_port if self._shared else free_port()
        self.node_name = f"orch-{self.amqp_port}@localhost"
        self._epmd = (
            None if self._shared else epmd_process(self.epmd_port, self.base_dir, self.env())
        )
        self._server = ManagedProcess(
            "rabbitmq-server",
            [str(RABBITMQ_SCRIPTS / "rabbitmq-server")],
            log_path=self.base_dir / "rabbitmq-server.log",
            env=self.env(),
            cwd=self.base_dir,
        )

    @property
    def amqp_url(self) -> str:
        """AMQP URL with the node's generated credentials (a secret: never log it)."""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        """Base URL of the management HTTP API and UI (:attr:`management_auth`)."""
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def management_auth(self) -> dict[str, str]:
        """The ``Authorization`` header for the management API (the node's user)."""
        pair = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    @property
    def metrics_tls(self) -> MetricsTls:
        """The Prometheus endpoint's CA and certificates (made at the first start)."""
        return issue_metrics_tls(self.base_dir / "metrics-tls")

    @property
    def prometheus_url(self) -> str:
        """Base URL of the Prometheus plugin; metrics are at ``/metrics`` (HTTPS, client
        certificate required: ``metrics_tls.client_context()``)."""
        return f"https://127.0.0.1:{self.prometheus_port}"

    @property
    def server_process(self) -> ManagedProcess:
        """The node's process (for supervision)."""
        return self._server

    @property
    def log_path(self) -> Path:
        """The file holding the broker's console output."""
        return self._server.log_path

    def env(self) -> dict[str, str]:
        """Environment for ``rabbitmq-server``/``rabbitmqctl``/``rabbitmq-diagnostics`` calls.

        It isolates the node completely from ``/etc/rabbitmq`` and from other nodes.
        """
        base = self.base_dir
        return {
            **os.environ,
            "HOME": str(self._shared.home if self._shared else base / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_BASE": str(base),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.mnesia_dir),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # Erlang's distribution listener (the node's, and each CLI call's own)
            # binds every interface unless told otherwise.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": LOOPBACK_DISTRIBUTION,
            "RABBITMQ_CTL_ERL_ARGS": LOOPBACK_DISTRIBUTION,
        }

    def start(self, timeout: float = 60) -> None:
        """Start epmd and the node, and return once the management API answers.

        A port taken by another process in the meantime makes the node start again
        on new ports (``amqp_url`` and the others change). Raises ``StartupError``
        (naming the log file) if the node fails or is too slow; the half-started
        processes are then ended.
        """
        start_retrying_ports(lambda: self._start_once(timeout), self._choose_ports)

    def _start_once(self, timeout: float) -> None:
        self._write_files()
        deadline = time.monotonic() + timeout
        try:
            if self._epmd is not None and not self._epmd.is_running():
                self._epmd.start()
                wait_for_tcp(self._epmd, self.epmd_port, timeout)
            self._start_server(deadline)
        except BaseException:
            self.stop()
            raise

    def stop_broker_only(self) -> None:
        """Stop the node gracefully (SIGTERM → clean shutdown), keeping ports, epmd and data."""
        self._server.stop(timeout=_GRACEFUL_STOP_SECONDS)

    def start_again(self, timeout: float = 60) -> None:
        """Start the node stopped by ``stop_broker_only`` with the same name, ports and data."""
        self._start_server(time.monotonic() + timeout)

    def restart(self, timeout: float = 60) -> None:
        """Stop the node gracefully and start it again; durable state survives."""
        self.stop_broker_only()
        self.start_again(timeout)

    def stop(self) -> None:
        """Fast teardown: SIGKILL the node's process tree and its epmd, delete its data."""
        self._server.stop(timeout=0)
        if self._epmd is not None:
            self._epmd.stop(timeout=0)
        shutil.rmtree(self.mnesia_dir, ignore_errors=True)

    def process_ids(self) -> list[int]:
        """PIDs of every process that belongs to this broker right now (node tree and epmd)."""
        epmd = self._epmd.process_ids() if self._epmd is not None else []
        return [*self._server.process_ids(), *epmd]

    def _start_server(self, deadline: float) -> None:
        self.pid_file.unlink(missing_ok=True)
        self._server.start()
        self._rabbitmqctl_wait(deadline)
        wait_for_http(
            f"{self.management_url}/api/overview",
            max(1.0, deadline - time.monotonic()),
            process=self._server,
            expect_status=200,
            headers=self.management_auth,
            proof=self.node_name,  # this node answered, not another on a reused port
        )

    def _rabbitmqctl_wait(self, deadline: float) -> None:
        """``rabbitmqctl wait`` for the node, given up as soon as the node itself exits
        (it then never writes the PID file the wait is for)."""
        seconds = max(1, int(deadline - time.monotonic()))
        command = [
            str(RABBITMQ_SCRIPTS / "rabbitmqctl"),
            "wait",
            str(self.pid_file),
            "--timeout",
            str(seconds),
        ]
        with subprocess.Popen(
            command,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as waiter:
            hard_deadline = time.monotonic() + seconds + 15
            while True:
                try:
                    output, _ = waiter.communicate(timeout=_NODE_CHECK_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    if not self._server.is_running():
                        waiter.kill()
                        waiter.communicate()
                        raise self._server.startup_error("exited while booting") from None
                    if time.monotonic() >= hard_deadline:
                        waiter.kill()
                        waiter.communicate()
                        raise self._server.startup_error("rabbitmqctl wait hung") from None
        if waiter.returncode != 0:
            raise self._server.startup_error(f"did not boot (rabbitmqctl wait: {output.strip()})")

    def _write_files(self) -> None:
        private_dir(self.base_dir)
        write_cookie(self._shared.home if self._shared else self.base_dir / "home")
        (self.base_dir / "log").mkdir(exist_ok=True)
        (self.base_dir / "rabbitmq-env.conf").write_text("")
        (self.base_dir / "enabled_plugins").write_text(ENABLED_PLUGINS)
        write_private(
            self.base_dir / "rabbitmq.conf",
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.management_port}\n"
            f"{self.metrics_tls.rabbitmq_conf(self.prometheus_port)}"
            f"{QUORUM_WAL_LIMIT}\n"
            # created at first boot instead of guest, which every local process could use
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
            "default_user_tags.administrator = true\n"
            "default_permissions.configure = .*\n"
            "default_permissions.read = .*\n"
            "default_permissions.write = .*\n",
        )


# Quorum queues keep the write-ahead log's data in memory until the WAL file reaches
# this size (default 512 MiB): the broker's memory grew steadily under the soak.
# 32 MB, as RabbitMQ's persistence guide suggests, bounds it (docs/RELIABILITY.md).
QUORUM_WAL_LIMIT = "raft.wal_max_size_bytes = 32000000"


def write_cookie(home: Path) -> None:
    """The Erlang cookie in ``home`` (0400), written up front so that the server and the
    CLI never race to create it; kept if there."""
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        write_private(cookie, secrets.token_hex(20))
        cookie.chmod(0o400)


def epmd_process(port: int, log_dir: Path, env: dict[str, str]) -> ManagedProcess:
    """A private epmd on loopback ``port`` (not started)."""
    return ManagedProcess(
        "epmd",
        [_epmd_binary(), "-port", str(port), "-address", "127.0.0.1"],
        log_path=log_dir / "epmd.log",
        env=env,
    )


def _epmd_binary() -> str:
    found = shutil.which("epmd")
    if found is None:
        candidates = sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))
        if not candidates:
            raise StartupError("epmd not found: is the rabbitmq-server package installed?")
        return str(candidates[-1])
    return found


def wait_for_tcp(process: ManagedProcess, port: int, timeout: float) -> None:
    """Return once ``port`` accepts connections; StartupError if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if not process.is_running():
            raise process.startup_error(f"exited before listening on {port}")
        if time.monotonic() >= deadline:
            raise process.startup_error(f"did not listen on {port}")
        time.sleep(0.05)
