"""A private RabbitMQ cluster of several nodes on loopback, run from the Debian package.

One shared epmd on a private port, one Erlang cookie, one user; each node its own name,
ports and data (a :class:`~devstack.broker.RabbitMQBroker` with the shared setup). The
first node boots alone, the others boot, then ``stop_app``, ``join_cluster`` the first
and ``start_app``. Quorum queues declared afterwards have a member on every node, so a
node can be killed (``kill_node``) and started again (``start_node``: it rejoins with its
data) while the others carry on.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.broker import (
    RABBITMQ_SCRIPTS,
    RabbitMQBroker,
    SharedNodeSetup,
    epmd_process,
    wait_for_tcp,
    write_cookie,
)
from devstack.metrics_tls import MetricsTls
from devstack.ports import free_port
from devstack.private_files import private_dir
from devstack.process import ManagedProcess, StartupError

JOIN_TIMEOUT_SECONDS = 120


class RabbitMQCluster:
    """``nodes`` RabbitMQ nodes clustered, all state under ``state_dir/rabbitmq-cluster``.

    Offers what the stack reads of a single broker (``amqp_url`` names every node,
    comma-separated; management, metrics and the AMQP port are the first node's).
    """

    def __init__(self, state_dir: Path, nodes: int = 3) -> None:
        if nodes < 2:
            raise ValueError("a cluster has at least two nodes")
        self.base_dir = state_dir.resolve() / "rabbitmq-cluster"
        self.user = "orchestrator"
        self.password = secrets.token_urlsafe(24)
        epmd_port = free_port()
        shared = SharedNodeSetup(self.user, self.password, self.base_dir / "home", epmd_port)
        self.nodes = [
            RabbitMQBroker(self.base_dir, dir_name=f"node{i + 1}", shared=shared)
            for i in range(nodes)
        ]
        self._shared = shared
        self._epmd: ManagedProcess = epmd_process(epmd_port, self.base_dir, self.nodes[0].env())

    # What the stack and the tests read of a broker: the first node's, or every node's.
    @property
    def amqp_url(self) -> str:
        """Every node's AMQP URL, comma-separated (``ORCH_AMQP_URL``; a secret)."""
        return ",".join(node.amqp_url for node in self.nodes)

    @property
    def amqp_port(self) -> int:
        """The first node's AMQP port."""
        return self.nodes[0].amqp_port

    @property
    def management_url(self) -> str:
        """The first node's management API (it shows the whole cluster)."""
        return self.nodes[0].management_url

    @property
    def management_auth(self) -> dict[str, str]:
        """The management API's ``Authorization`` header."""
        return self.nodes[0].management_auth

    @property
    def metrics_tls(self) -> MetricsTls:
        """The first node's Prometheus certificates."""
        return self.nodes[0].metrics_tls

    @property
    def prometheus_url(self) -> str:
        """The first node's Prometheus endpoint."""
        return self.nodes[0].prometheus_url

    @property
    def server_process(self) -> ManagedProcess:
        """The first node's process (supervision watches the first node)."""
        return self.nodes[0].server_process

    @property
    def log_path(self) -> Path:
        """The first node's console output."""
        return self.nodes[0].log_path

    def start(self, timeout: float = 120) -> None:
        """Start epmd and every node, and join them into one cluster; StartupError (and
        everything ended) when a node does not boot or join in time."""
        private_dir(self.base_dir)
        write_cookie(self._shared.home)
        try:
            self._epmd.start()
            wait_for_tcp(self._epmd, self._shared.epmd_port, timeout)
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                for done in [pool.submit(node.start, timeout) for node in self.nodes]:
                    done.result()
            for node in self.nodes[1:]:
                self._join(node)
        except BaseException:
            self.stop()
            raise

    def _ctl(self, node: RabbitMQBroker, *args: str) -> str:
        done = subprocess.run(
            [str(RABBITMQ_SCRIPTS / "rabbitmqctl"), "-n", node.node_name, *args],
            env=node.env(),
            capture_output=True,
            text=True,
            timeout=JOIN_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise StartupError(
                f"rabbitmqctl {' '.join(args)} on {node.node_name} failed: "
                f"{(done.stderr or done.stdout).strip()[-500:]} (log: {node.log_path})"
            )
        return done.stdout

    def _join(self, node: RabbitMQBroker) -> None:
        self._ctl(node, "stop_app")
        self._ctl(node, "join_cluster", self.nodes[0].node_name)
        self._ctl(node, "start_app")

    def running_nodes(self) -> list[str]:
        """Names of the nodes the first live node sees running."""
        for node in self.nodes:
            if node.server_process.is_running():
                out = self._ctl(node, "eval", "rabbit_nodes:all_running().")
                return sorted(name.strip(" []'\n") for name in out.split(",") if name.strip())
        return []

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based), as a crashed host: its data stays."""
        self.nodes[index].server_process.stop(timeout=0)

    def start_node(self, index: int, timeout: float = 90) -> None:
        """Start a killed node again with its name, ports and data: it rejoins."""
        self.nodes[index].start_again(timeout)

    def stop_broker_only(self) -> None:
        """Stop every node gracefully (last to first), keeping ports, epmd and data."""
        for node in reversed(self.nodes):
            node.stop_broker_only()

    def start_again(self, timeout: float = 120) -> None:
        """Start every node stopped by ``stop_broker_only`` at once (each waits for its
        peers to come back), with the same names, ports and data."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for done in [pool.submit(node.start_again, timeout) for node in self.nodes]:
                done.result()

    def wait_until_all_running(self, timeout: float = 60) -> None:
        """Return once every node runs in the cluster; StartupError after ``timeout``."""
        deadline = time.monotonic() + timeout
        want = sorted(node.node_name for node in self.nodes)
        while (seen := self.running_nodes()) != want:
            if time.monotonic() >= deadline:
                raise StartupError(f"cluster nodes running: {seen}, expected {want}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Fast teardown of every node and epmd (data deleted)."""
        for node in self.nodes:
            node.stop()
        self._epmd.stop(timeout=0)

    def process_ids(self) -> list[int]:
        """PIDs of every process of the cluster right now."""
        return [pid for node in self.nodes for pid in node.process_ids()] + list(
            self._epmd.process_ids()
        )
