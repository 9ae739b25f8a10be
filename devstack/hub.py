"""A local JupyterHub (with its proxy and single-user servers) on loopback ports."""

from __future__ import annotations

import json
import sqlite3
import ssl
import sys
import time
from pathlib import Path

import psutil

from devstack.hub_config import (
    HubConfig,
    HubPorts,
    NotifyServiceSpec,
    render_hub_config,
    render_singleuser_config,
)
from devstack.ports import free_port, start_retrying_ports, wait_for_http
from devstack.private_files import private_dir, write_private
from devstack.process import ManagedProcess, snapshot_tree
from devstack.proxy_install import DEFAULT_PROXY_PREFIX, install_proxy
from hub_service.jupyterhub_contract import RESTRICTED_HIDDEN_LAB_PLUGINS

__all__ = ["HubConfig", "JupyterHubProcess", "NotifyServiceSpec"]

_HUB_STOP_SECONDS = 10.0


class JupyterHubProcess:
    """One JupyterHub with configurable-http-proxy, spawning local single-user servers.

    Ports are fixed when the object is built, so ``restart`` brings back the same Hub
    (same URLs, same database); single-user servers keep running across a restart.
    ``stop`` ends the Hub, its proxy, its managed services and every single-user server
    (found as descendants and, after a restart, through the Hub database).
    """

    def __init__(self, config: HubConfig, *, proxy_prefix: Path = DEFAULT_PROXY_PREFIX) -> None:
        self.config = config
        self.ports = self._choose_ports()
        self._proxy_prefix = proxy_prefix
        hub_dir = config.hub_dir
        self.config_path = hub_dir / "jupyterhub_config.py"
        self._process = ManagedProcess(
            "jupyterhub",
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(self.config_path)],
            log_path=hub_dir / "jupyterhub.log",
            cwd=hub_dir,
            umask=0o077,  # the Hub database, cookie secret and proxy state: owner only
        )

    def _choose_ports(self) -> HubPorts:
        """Free ports for whatever the config leaves open (a fixed port stays fixed)."""
        return HubPorts(
            public=self.config.hub_port or free_port(),
            hub=free_port(),
            proxy_api=self.config.proxy_api_port or free_port(),
        )

    def _rechoose_ports(self) -> None:
        # a preferred public port that was taken is given up for a free one
        self.config.hub_port = None
        self.ports = self._choose_ports()

    @property
    def url(self) -> str:
        """Public URL (the proxy): ``/hub/...``, ``/user/NAME/...``, ``/services/NAME/``."""
        return f"{self.config.scheme}://127.0.0.1:{self.ports.public}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """What a client verifies the Hub's HTTPS with (None: the Hub serves plain HTTP)."""
        return None if self.config.tls is None else self.config.tls.client_context()

    @property
    def api_url(self) -> str:
        """Base URL of the Hub REST API, as services see it in ``JUPYTERHUB_API_URL``."""
        return f"{self.url}/hub/api"

    @property
    def process(self) -> ManagedProcess:
        """The JupyterHub process (for supervision)."""
        return self._process

    @property
    def log_path(self) -> Path:
        """The Hub's log file (proxy and managed service output included)."""
        return self._process.log_path

    def start(self, timeout: float = 60) -> None:
        """Write the config files, start the Hub and return once its API answers the service.

        A port taken by another process in the meantime makes it start again on new
        ports (``url`` changes). Raises ``StartupError`` naming the log file if the Hub
        exits or is too slow; the half-started processes are then ended.
        """
        start_retrying_ports(lambda: self._start_once(timeout), self._rechoose_ports)

    def _start_once(self, timeout: float) -> None:
        proxy_command = install_proxy(self._proxy_prefix)
        self._write_config_files(proxy_command)
        deadline = time.monotonic() + timeout
        context = self.ssl_context()
        self._process.start()
        try:
            wait_for_http(
                f"{self.url}/hub/health",
                timeout,
                process=self._process,
                expect_status=200,
                ssl_context=context,
            )
            # Proof that THIS Hub answered (another stack's proxy on a reused port answers
            # /hub/health too): only our Hub knows our service token.
            wait_for_http(
                f"{self.api_url}/user",
                max(1.0, deadline - time.monotonic()),
                process=self._process,
                expect_status=200,
                headers={"Authorization": f"token {self.config.service_token}"},
                ssl_context=context,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End the Hub, proxy, managed services and all single-user servers (and kernels)."""
        self._process.stop(timeout=_HUB_STOP_SECONDS, extra_pids=self.singleuser_pids())

    def restart(self, timeout: float = 60) -> None:
        """Stop the Hub gracefully and start it again; single-user servers keep running."""
        self.stop_keeping_servers()
        self.start_again(timeout)

    def stop_keeping_servers(self) -> None:
        """Stop the Hub and its proxy gracefully (an outage); single-user servers keep
        running and :meth:`start_again` brings it back on the same ports."""
        self._process.stop(timeout=_HUB_STOP_SECONDS, spare_pids=self.singleuser_pids())

    def start_again(self, timeout: float = 60) -> None:
        """Start a Hub stopped by :meth:`stop_keeping_servers`, on the same ports (the
        servers and clients expect them)."""
        self._start_once(timeout)

    def is_running(self) -> bool:
        """True while the Hub process runs."""
        return self._process.is_running()

    @property
    def pid(self) -> int:
        """PID of the JupyterHub process itself (raises ``RuntimeError`` before start)."""
        return self._process.pid

    def process_ids(self) -> list[int]:
        """PIDs of every process that belongs to this Hub now, single-user servers included."""
        return sorted({*self._process.process_ids(), *self._singleuser_tree_pids()})

    def singleuser_pids(self) -> list[int]:
        """PIDs of the single-user servers the Hub database records as running.

        The Hub API shows spawner state only with ``admin:server_state``, a scope the
        orchestrator service deliberately lacks, so the database is read directly. A PID
        counts only if that process runs with this Hub's single-user config dir.
        """
        if not self.config.db_path.exists():
            return []
        uri = f"file:{self.config.db_path}?mode=ro"
        try:
            with sqlite3.connect(uri, uri=True, timeout=5) as connection:
                rows = connection.execute(
                    "SELECT state FROM spawners WHERE server_id IS NOT NULL"
                ).fetchall()
        except sqlite3.Error:
            return []
        pids: list[int] = []
        for (state_text,) in rows:
            state = json.loads(state_text) if state_text else {}
            pid = state.get("pid") if isinstance(state, dict) else None
            if isinstance(pid, int) and pid > 0 and self._is_own_server(pid):
                pids.append(pid)
        return pids

    def _is_own_server(self, pid: int) -> bool:
        """Guard against PID reuse: a stale row (e.g. after a crash) may name another process."""
        expected_config_dir = str(self.config.singleuser_config_dir)
        try:
            config_dir: str | None = psutil.Process(pid).environ().get("JUPYTER_CONFIG_DIR")
        except psutil.Error:
            return False
        return config_dir == expected_config_dir

    def _singleuser_tree_pids(self) -> list[int]:
        return [process.pid for process in snapshot_tree(self.singleuser_pids())]

    def _write_config_files(self, proxy_command: Path) -> None:
        config = self.config
        private_dir(config.hub_dir)  # config (tokens, launch secret), database, cookie secret
        if config.accounts is not None:  # what the servers' accounts must reach
            for folder, mode in (
                (config.accounts.public_dir, 0o755),
                (config.singleuser_config_dir, 0o755),
                (config.accounts.homes_root, 0o711),
            ):
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(mode)
        else:
            config.singleuser_config_dir.mkdir(parents=True, exist_ok=True)
            (config.state_dir.resolve() / "home").mkdir(parents=True, exist_ok=True)
        write_private(self.config_path, render_hub_config(config, self.ports, proxy_command))
        (config.singleuser_config_dir / "jupyter_server_config.py").write_text(
            render_singleuser_config(config)
        )
        # jupyter_core "migrates" IPython 3 config into JUPYTER_CONFIG_DIR once, on a start
        # that finds ~/.ipython (a server of another Hub on this machine made one) and no
        # marker here; the servers' accounts may not write here, so the marker is ours.
        (config.singleuser_config_dir / "migrated").touch()
        _write_lab_page_config(config)


def _write_lab_page_config(config: HubConfig) -> None:
    """JupyterLab's page config next to the servers' config: in restricted-data mode the
    download and export plugins are disabled (the servers refuse those routes anyway)."""
    labconfig = config.singleuser_config_dir / "labconfig"
    labconfig.mkdir(exist_ok=True)
    labconfig.chmod(0o755)
    disabled = {plugin: True for plugin in RESTRICTED_HIDDEN_LAB_PLUGINS}
    page = {"disabledExtensions": disabled if config.restricted_data else {}}
    (labconfig / "page_config.json").write_text(json.dumps(page, indent=2))
