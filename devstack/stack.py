"""The whole orchestrator stack on loopback: one implementation for ``make run``,
the test fixtures and the benchmarks.

Starts, under ``state_dir``: a private RabbitMQ, a JupyterHub (which itself starts the
hub service), the gateway and N consumers, each on free ports, and waits for each
to be ready. :meth:`LocalStack.stop` ends every process it started, by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from devstack.broker import RabbitMQBroker
from devstack.broker_cluster import RabbitMQCluster
from devstack.concurrently import in_parallel
from devstack.hub import JupyterHubProcess
from devstack.hub_config import HubConfig, NotifyServiceSpec, WorkspaceAccounts
from devstack.ports import free_port, start_retrying_ports, wait_for_http
from devstack.postgres import PostgresServer
from devstack.private_files import private_dir
from devstack.process import REPOSITORY_ROOT, ManagedProcess, StartupError
from devstack.tls import issue_web_tls
from devstack.workspace_accounts import SINGLEUSER_VENV, remove_accounts
from hub_service.jupyterhub_contract import SAVE_EXTENSION
from hub_service.labextension.build import LABEXTENSIONS_DIR, build_labextension
from runtime.hubs import DEFAULT_HUB, HubSpec

SERVICE_NAME = "orchestrator"
NOTIFY_SERVICE_NAME = "orchestrator-notify"


@dataclass
class StackOptions:
    """What to start and how it is tuned."""

    consumers: int = 1
    broker_nodes: int = 1  # more than one: a RabbitMQ cluster of that many nodes
    gateways: int = 1  # more than one: extra gateway processes, each on its own port
    postgres: bool = False  # True: a private PostgreSQL server holds the database
    partitions: int = 4
    app_origins: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8050"])
    concurrent_spawn_limit: int = 100
    spawn_concurrency: int = 4
    hub_service: bool = True
    hub: bool = True  # False: broker + gateway (+ consumers) only, e.g. gateway tests/benches
    hubs: int = 1  # more than one: that many JupyterHubs (hub-1, hub-2, ...), users spread
    hub_weights: list[float] = field(default_factory=list)  # per Hub (default: 1 each)
    hub_extra_config: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    hub_api_url_override: str | None = None  # e.g. a fault proxy in front of the Hub
    hub_public_url_override: str | None = None
    gateway_port: int | None = None  # preferred (a free one when taken); None: a free port
    hub_port: int | None = None  # preferred (a free one when taken); None: a free port
    # A system account per workspace for its server and kernels (needs root; None: when
    # running as root). Without, every server runs as our own account: no isolation.
    user_accounts: bool | None = None
    # Restricted-data mode: the servers refuse downloads, exports and copies out, and
    # JupyterLab hides them (hub_service/restricted.py)
    restricted_data: bool = False
    # App origins (of app_origins) on another site than the Hub: the Hub then serves
    # HTTPS (a certificate from the stack's own CA, ``LocalStack.web_tls``) and its
    # cookies are partitioned (hub_service/embedding.py)
    cross_site_origins: list[str] = field(default_factory=list)


# The project packages a single-user server imports (the save extension, the contents
# manager): copied where the workspaces' accounts can read them.
SINGLEUSER_PACKAGES = ("hub_service", "schemas")


def _first_closed_folder(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other accounts may not enter."""
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


class LocalStack:
    """A running (or startable) local stack."""

    def __init__(self, state_dir: Path, options: StackOptions | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.options = options or StackOptions()
        private_dir(self.state_dir)  # the orchestrator database and every secret live here
        self.logs_dir = self.state_dir / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.service_token = secrets.token_hex(32)
        self.hub_admin_token = secrets.token_hex(32)  # tests and benchmarks only
        self.accounts = self._workspace_accounts()
        self.launch_secret = secrets.token_hex(32)
        self.web_tls = (
            issue_web_tls(self.state_dir / "tls") if self.options.cross_site_origins else None
        )
        self.database_url = f"sqlite+aiosqlite:///{self.state_dir / 'orchestrator.db'}"
        self.gateway_port = self.options.gateway_port or free_port()
        self.notify_ports = [free_port() for _ in range(max(1, self.options.hubs))]
        self.notify_port = self.notify_ports[0]
        self.broker: RabbitMQBroker | RabbitMQCluster = (
            RabbitMQCluster(self.state_dir, self.options.broker_nodes)
            if self.options.broker_nodes > 1
            else RabbitMQBroker(self.state_dir)
        )
        self.hub = JupyterHubProcess(self._hub_config(0))
        # the Hubs beyond the first (options.hubs), each with its own ports, database,
        # proxy and hub service
        self.extra_hubs = [
            JupyterHubProcess(self._hub_config(i)) for i in range(1, self.options.hubs)
        ]
        self.gateway: ManagedProcess | None = None
        # the gateways beyond the first: (process, base URL), as if on other hosts
        self.extra_gateways: list[tuple[ManagedProcess, str]] = []
        self.postgres = PostgresServer(self.state_dir) if self.options.postgres else None
        self.consumers: list[ManagedProcess] = []
        self.consumer_metrics_ports: dict[int, int] = {}
        self._consumer_instances: dict[int, str] = {}
        self._consumer_env: dict[int, dict[str, str]] = {}
        self.extra_processes: list[ManagedProcess] = []

    def _workspace_accounts(self) -> WorkspaceAccounts | None:
        """What the workspaces' accounts will get (nothing is created before ``start``)."""
        wanted = self.options.user_accounts
        if wanted is None:
            wanted = os.geteuid() == 0
        if not wanted:
            return None
        public_dir = Path(tempfile.gettempdir()) / f"orch-workspaces-{secrets.token_hex(6)}"
        return WorkspaceAccounts(
            public_dir=public_dir,
            singleuser_venv=SINGLEUSER_VENV,
            pythonpath=[str(public_dir / "python")],
        )

    def _prepare_workspace_accounts(self, accounts: WorkspaceAccounts) -> None:
        """Check the accounts can run the single-user venv; copy the project's
        single-user packages where they can read them."""
        if os.geteuid() != 0:
            raise StartupError("a system account per workspace needs root")
        if not (accounts.singleuser_venv / "bin" / "jupyterhub-singleuser").exists():
            raise StartupError(
                f"no single-user environment at {accounts.singleuser_venv}: "
                "`make install` builds it"
            )
        blocked = _first_closed_folder(accounts.singleuser_venv)
        if blocked is not None:
            raise StartupError(
                f"{blocked} is not searchable by other accounts (mode "
                f"{blocked.stat().st_mode & 0o777:o}): the workspaces' accounts could not run "
                f"{accounts.singleuser_venv}; put the repository where others may enter, or "
                "set StackOptions.user_accounts=False (no isolation)"
            )
        accounts.public_dir.mkdir(mode=0o755)
        accounts.public_dir.chmod(0o755)
        for package in SINGLEUSER_PACKAGES:
            shutil.copytree(
                REPOSITORY_ROOT / package,
                Path(accounts.pythonpath[0]) / package,
                ignore=shutil.ignore_patterns("__pycache__", "node_modules"),
            )

    @property
    def isolated(self) -> bool:
        """True when every workspace's server runs as an account of its own."""
        return self.accounts is not None

    def workspace_home(self, hub_user: str, hub: str | None = None) -> Path:
        """The folder a workspace's server on Hub ``hub`` (a name of :meth:`hub_name`;
        the first Hub for None) serves: its account's home, or a folder of it for a
        second Hub, when isolated."""
        index = 0 if hub is None else [self.hub_name(i) for i in range(len(self.hubs))].index(hub)
        config = self.hubs[index].config
        if self.accounts is not None:
            return self.accounts.homes_root / hub_user / (config.home_subdir or "")
        return config.state_dir.resolve() / "home" / hub_user

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_urls(self) -> list[str]:
        """Base URLs of every gateway (the first is :attr:`gateway_url`)."""
        return [self.gateway_url, *(url for _, url in self.extra_gateways)]

    @property
    def hubs(self) -> list[JupyterHubProcess]:
        """Every Hub, the first being :attr:`hub`."""
        return [self.hub, *self.extra_hubs]

    def hub_name(self, index: int) -> str:
        """The name of Hub ``index`` (0-based) in ``ORCH_HUBS``: ``default`` alone,
        else ``hub-1``, ``hub-2``, ..."""
        return DEFAULT_HUB if self.options.hubs <= 1 else f"hub-{index + 1}"

    def hub_specs(self) -> list[HubSpec]:
        """The Hubs as the orchestrator's processes are told of them (``ORCH_HUBS``)."""
        weights = self.options.hub_weights or [1.0] * len(self.hubs)
        return [
            HubSpec(
                name=self.hub_name(i),
                api_url=hub.api_url,
                public_url=hub.url,
                token=SecretStr(self.service_token),
                weight=weights[i],
                spawn_limit=self.options.spawn_concurrency,
            )
            for i, hub in enumerate(self.hubs)
        ]

    def _hub_config(self, index: int = 0) -> HubConfig:
        notify = None
        if self.options.hub_service:
            notify = NotifyServiceSpec(
                name=NOTIFY_SERVICE_NAME,
                port=self.notify_ports[index],
                command=[sys.executable, "-m", "orchestrator", "hub-service"],
                environment=self._notify_env(index),
            )
        return HubConfig(
            self.state_dir / ("jupyterhub" if index == 0 else f"jupyterhub-{index + 1}"),
            service_name=SERVICE_NAME,
            service_token=self.service_token,
            app_origins=self.options.app_origins,
            concurrent_spawn_limit=self.options.concurrent_spawn_limit,
            notify_service=notify,
            singleuser_extensions=[SAVE_EXTENSION] if self.options.hub_service else [],
            singleuser_environment={
                "ORCH_NOTIFY_URL": f"http://127.0.0.1:{self.notify_ports[index]}",
            },
            extra_config=self.options.hub_extra_config,
            hub_port=self.options.hub_port if index == 0 else None,
            launch_secret=self.launch_secret,
            labextensions_dirs=[LABEXTENSIONS_DIR],
            admin_service_token=self.hub_admin_token,
            accounts=self.accounts,
            home_subdir=None if index == 0 else self.hub_name(index),
            restricted_data=self.options.restricted_data,
            cross_site_origins=self.options.cross_site_origins,
            tls=self.web_tls,
        )

    def _notify_env(self, index: int) -> dict[str, str]:
        # The broker URL is known only after the broker picked its ports, which happens
        # in RabbitMQBroker.__init__; the Hub passes this env to the service it starts.
        return {
            "ORCH_AMQP_URL": self.broker.amqp_url,
            "ORCH_DATABASE_URL": self.database_url,
            "ORCH_PARTITIONS": str(self.options.partitions),
            "ORCH_LOG_JSON": "true",
            "ORCH_HUB_NAME": self.hub_name(index),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }

    def settings_env(self) -> dict[str, str]:
        """``ORCH_*`` settings every orchestrator process of this stack gets."""
        hub_api = self.options.hub_api_url_override or self.hub.api_url
        hub_public = self.options.hub_public_url_override or self.hub.url
        return {
            "ORCH_AMQP_URL": self.broker.amqp_url,
            "ORCH_MANAGEMENT_URL": self.broker.management_url,
            "ORCH_MANAGEMENT_USER": self.broker.user,
            "ORCH_MANAGEMENT_PASSWORD": self.broker.password,
            "ORCH_DATABASE_URL": self.database_url,
            "ORCH_PARTITIONS": str(self.options.partitions),
            "ORCH_GATEWAY_HOST": "127.0.0.1",
            "ORCH_GATEWAY_PORT": str(self.gateway_port),
            "ORCH_PUBLIC_URL": self.gateway_url,
            "ORCH_HUB_API_URL": hub_api,
            "ORCH_HUB_PUBLIC_URL": hub_public,
            "ORCH_HUB_API_TOKEN": self.service_token,
            "ORCH_LAUNCH_SECRET": self.launch_secret,
            "ORCH_SPAWN_CONCURRENCY": str(self.options.spawn_concurrency),
            "ORCH_APP_ORIGINS": json.dumps(self.options.app_origins),
            **({"ORCH_HUB_CA_FILE": str(self.web_tls.ca_file)} if self.web_tls else {}),
            "ORCH_LOG_JSON": "true",
            **self._hubs_env(),
            **self.options.extra_env,
        }

    def _hubs_env(self, *, tokens: bool = True) -> dict[str, str]:
        """``ORCH_HUBS`` when there are several Hubs (a secret, with ``tokens``)."""
        if len(self.hubs) <= 1:
            return {}
        specs = [
            {**spec.model_dump(mode="json"), "token": spec.token.get_secret_value()}
            if tokens
            else spec.model_dump(mode="json", exclude={"token"})
            for spec in self.hub_specs()
        ]
        return {"ORCH_HUBS": json.dumps(specs)}

    def gateway_env(self) -> dict[str, str]:
        """A gateway's environment: no Hub token (it issues launch links, it never calls
        a Hub)."""
        env = {**self.process_env(), **self._hubs_env(tokens=False)}
        env.pop("ORCH_HUB_API_TOKEN", None)
        return env

    def process_env(self) -> dict[str, str]:
        """Environment of a child process: ours plus the stack's settings."""
        return {**os.environ, **self.settings_env()}

    def start(self, timeout: float = 90) -> None:
        """Start everything and wait for readiness; on failure stop what started.

        PostgreSQL starts beside the broker. The Hubs wait for the broker, whose ports
        their services are given; the gateways and consumers wait for the Hubs, whose
        URLs they are given (a Hub whose port was taken meanwhile moves to another, and
        a consumer started before would call whatever holds the old one).
        """
        try:
            in_parallel(
                lambda: self._start_database(timeout), lambda: self.broker.start(timeout=timeout)
            )
            # The broker may have moved to other ports: the Hub's service env names them.
            for index, hub in enumerate(self.hubs):
                hub.config = self._hub_config(index)
            self._start_hubs(timeout)
            self._start_apis(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_database(self, timeout: float) -> None:
        if self.postgres is not None:
            self.postgres.start(timeout=timeout)
            self.database_url = self.postgres.create_database("orchestrator")

    def _start_hubs(self, timeout: float) -> None:
        if not self.options.hub:
            return
        build_labextension()
        if self.accounts is not None:
            self._prepare_workspace_accounts(self.accounts)
        in_parallel(*(lambda hub=hub: hub.start(timeout=timeout) for hub in self.hubs))

    def _start_apis(self, timeout: float) -> None:
        """The gateways, then the consumers (the first gateway has migrated the database)."""
        self.start_gateway(timeout=timeout)
        for index in range(1, self.options.gateways):
            self.start_extra_gateway(index, timeout)
        for index in range(self.options.consumers):
            self.start_consumer(index, wait=False)
        for index in range(self.options.consumers):
            self.wait_consumer_ready(index, timeout)

    def start_gateway(self, timeout: float = 60) -> None:
        """Start (or restart) the gateway and wait for ``/readyz`` from this very process.

        ``options.gateway_port`` is preferred; a port taken by another process (also in
        the meantime) moves the gateway to a free one (``gateway_url`` changes).
        """

        def choose_port() -> None:
            self.gateway_port = free_port()

        def start_once() -> None:
            self.gateway = self._launch_gateway("gateway", self.gateway_port, timeout)

        start_retrying_ports(start_once, choose_port)

    def start_extra_gateway(self, index: int, timeout: float = 60) -> str:
        """Start gateway ``index`` (1, 2, ...) beside the first, on a free port of its own
        (as if on another host; same database and broker); returns its base URL. A
        stopped one of the same index is replaced."""
        port = free_port()

        def choose_port() -> None:
            nonlocal port
            port = free_port()

        launched: list[ManagedProcess] = []
        start_retrying_ports(
            lambda: launched.append(self._launch_gateway(f"gateway-{index}", port, timeout)),
            choose_port,
        )
        url = f"http://127.0.0.1:{port}"
        entry = (launched[-1], url)
        if index - 1 < len(self.extra_gateways):
            self.extra_gateways[index - 1] = entry
        else:
            self.extra_gateways.append(entry)
        return url

    def _launch_gateway(self, name: str, port: int, timeout: float) -> ManagedProcess:
        """A gateway process on ``port``, answering ``/readyz`` (stopped on failure)."""
        instance = secrets.token_hex(8)
        url = f"http://127.0.0.1:{port}"
        process = ManagedProcess(
            name,
            [sys.executable, "-m", "orchestrator", "gateway"],
            log_path=self.logs_dir / f"{name}.log",
            env={
                **self.gateway_env(),
                "ORCH_GATEWAY_PORT": str(port),
                "ORCH_PUBLIC_URL": url,
                "ORCH_INSTANCE": instance,
            },
        )
        process.start()
        try:
            wait_for_http(
                f"{url}/readyz", timeout, process=process, expect_status=200, proof=instance
            )
        except BaseException:
            process.stop()
            raise
        return process

    def start_consumer(
        self,
        index: int,
        timeout: float = 60,
        *,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> ManagedProcess:
        """Start consumer ``index`` (replacing a stopped one with the same index).

        Each index keeps one metrics port (``consumer_metrics_ports``) across restarts
        (a new one if another process took it); with ``wait`` returns once its
        ``/readyz`` answers 200 (partitions subscribed). ``extra_env`` is for this
        process only (e.g. ``ORCH_FAILPOINTS``).
        """
        self.consumer_metrics_ports.setdefault(index, free_port())
        self._consumer_env[index] = extra_env or {}
        self._launch_consumer(index)
        if wait:
            self.wait_consumer_ready(index, timeout)
        return self.consumers[index]

    def _launch_consumer(self, index: int) -> None:
        instance = secrets.token_hex(8)
        consumer = ManagedProcess(
            f"consumer-{index}",
            [
                sys.executable,
                "-m",
                "orchestrator",
                "consumer",
                "--index",
                str(index),
                "--count",
                str(self.options.consumers),
            ],
            log_path=self.logs_dir / f"consumer-{index}.log",
            env={
                **self.process_env(),
                "ORCH_METRICS_PORT": str(self.consumer_metrics_ports[index]),
                "ORCH_INSTANCE": instance,
                **self._consumer_env.get(index, {}),
            },
        )
        self._consumer_instances[index] = instance
        consumer.start()
        if index < len(self.consumers):
            self.consumers[index] = consumer
        else:
            self.consumers.append(consumer)

    def wait_consumer_ready(self, index: int, timeout: float = 60) -> None:
        """Wait until consumer ``index`` itself answers ``/readyz`` with 200.

        A consumer whose metrics port was taken meanwhile is started again on another.
        """

        def wait_once() -> None:
            try:
                wait_for_http(
                    f"http://127.0.0.1:{self.consumer_metrics_ports[index]}/readyz",
                    timeout,
                    process=self.consumers[index],
                    expect_status=200,
                    proof=self._consumer_instances[index],
                )
            except BaseException:
                self.consumers[index].stop()
                raise

        def relaunch_on_new_port() -> None:
            self.consumer_metrics_ports[index] = free_port()
            self._launch_consumer(index)

        start_retrying_ports(wait_once, relaunch_on_new_port)

    def orchestrator_cli(self, *args: str) -> str:
        """Run ``orchestrator ARGS`` against this stack; returns stdout (raises on error)."""
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env=self.process_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise StartupError(f"orchestrator {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def issue_app_key(
        self, app: str, *, types: str | None = None, user_prefix: str | None = None
    ) -> str:
        """Issue an API key for ``app`` through the operator CLI; returns the key."""
        args = ["keys", "--json", "create", app]
        if types:
            args += ["--types", types]
        if user_prefix:
            args += ["--user-prefix", user_prefix]
        key: str = json.loads(self.orchestrator_cli(*args))[0]["key"]
        return key

    def stop(self) -> None:
        """Stop every process this stack started (consumers, gateways, Hubs, broker, database)."""
        for process in self.extra_processes:
            process.stop()
        # the processes of one layer end together; the layers below them after them
        gateways = [gateway for gateway, _ in self.extra_gateways]
        if self.gateway is not None:
            gateways.append(self.gateway)
        in_parallel(*(process.stop for process in [*self.consumers, *gateways]))
        # a no-op for a Hub that was never started (options.hub False)
        in_parallel(*(hub.stop for hub in self.hubs))
        in_parallel(self.broker.stop, *([self.postgres.stop] if self.postgres else []))
        if self.accounts is not None:
            remove_accounts(self.accounts)

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
