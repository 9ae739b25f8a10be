"""A private, throwaway PostgreSQL server on a loopback port, run from the Debian package."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from devstack.ports import free_port, start_retrying_ports
from devstack.process import ManagedProcess, StartupError, snapshot_tree

POSTGRES_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # who runs the server when we are root (postgres refuses root)
_FAST_SHUTDOWN_SECONDS = 15.0
# Durability is pointless for a throwaway cluster and costs seconds per test run.
_THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the newest installed PostgreSQL (raises if none is)."""
    found = sorted(
        (p for p in POSTGRES_ROOT.glob("*/bin/initdb") if p.parent.parent.name.isdigit()),
        key=lambda p: int(p.parent.parent.name),
    )
    if not found:
        raise StartupError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install -y postgresql"
        )
    return found[-1].parent


class PostgresServer:
    """One PostgreSQL cluster with its own data directory, port and unix socket directory.

    The cluster lives in a fresh temporary directory (owned by ``postgres`` when we run
    as root, because the server refuses to run as root and cannot enter root's private
    temp dirs); the server log goes to ``state_dir/postgresql.log``. Clients connect over
    TCP on 127.0.0.1 with password authentication as ``user``; :meth:`stop` ends the
    server by PID and deletes the cluster.
    """

    def __init__(self, state_dir: Path, *, user: str = "orchestrator") -> None:
        self.state_dir = state_dir.resolve()
        self.user = user
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.bin_dir = postgres_bin_dir()
        self.cluster_dir: Path | None = None
        self._server: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        """The file holding the server's output."""
        return self.state_dir / "postgresql.log"

    def process_ids(self) -> list[int]:
        """PIDs of the server and its backends right now (empty when stopped)."""
        if self._server is None or not self._server.is_running():
            return []
        return [p.pid for p in snapshot_tree([self._server.pid])]

    @property
    def pid(self) -> int:
        """PID of the postmaster (raises ``RuntimeError`` before :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return self._server.pid

    def url(self, database: str = "postgres", *, driver: str = "asyncpg") -> str:
        """SQLAlchemy URL of ``database`` (``driver`` e.g. ``asyncpg`` or ``psycopg2``)."""
        return f"postgresql+{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60) -> None:
        """Create the cluster, start the server and return once it accepts connections.

        Raises ``StartupError`` (naming the log file) if it fails or is too slow; what
        was started is then stopped. A port taken by another process in the meantime
        makes it start again on a new one (``url`` changes).
        """
        start_retrying_ports(lambda: self._start_once(timeout), self._choose_port)

    def _choose_port(self) -> None:
        self.port = free_port()

    def _start_once(self, timeout: float) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            self.cluster_dir = Path(tempfile.mkdtemp(prefix="orch-postgres-"))
            self._init_cluster()
            self._server = ManagedProcess(
                "postgres",
                [*self._as_server_user(), str(self.bin_dir / "postgres"), *self._server_args()],
                log_path=self.log_path,
                env=self._env(),
            )
            self._server.start()
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def create_database(self, name: str) -> str:
        """Create database ``name`` (a plain identifier) and return its asyncpg URL."""
        self._run_tool("createdb", "--host", "127.0.0.1", "--port", str(self.port), name)
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, by PID), then SIGKILL leftovers and
        delete the cluster. Idempotent."""
        server = self._server
        if server is not None and server.is_running():
            leftovers = snapshot_tree([server.pid])
            os.kill(server.pid, signal.SIGINT)
            psutil.wait_procs(leftovers, timeout=_FAST_SHUTDOWN_SECONDS)
            server.stop(timeout=0)
        if self.cluster_dir is not None:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
            self.cluster_dir = None

    def _init_cluster(self) -> None:
        assert self.cluster_dir is not None
        (self.cluster_dir / "sockets").mkdir()
        password_file = self.cluster_dir / "password"
        password_file.write_text(self.password + "\n")
        if os.geteuid() == 0:
            account = _server_account()
            for path in (self.cluster_dir, self.cluster_dir / "sockets", password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run_tool(
            "initdb",
            "--pgdata",
            str(self.cluster_dir / "data"),
            "--username",
            self.user,
            "--pwfile",
            str(password_file),
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()

    def _server_args(self) -> list[str]:
        assert self.cluster_dir is not None
        settings = [
            "listen_addresses=127.0.0.1",
            f"port={self.port}",
            f"unix_socket_directories={self.cluster_dir / 'sockets'}",
            "max_connections=200",
            *_THROWAWAY_SETTINGS,
        ]
        args = ["-D", str(self.cluster_dir / "data")]
        for setting in settings:
            args += ["-c", setting]
        return args

    def _wait_ready(self, deadline: float) -> None:
        assert self._server is not None
        while True:  # no event to await: pg_isready is the server's own readiness probe
            probe = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
                timeout=10,
            )
            if probe.returncode == 0:
                return
            if not self._server.is_running():
                raise self._server.startup_error("exited before accepting")
            if time.monotonic() >= deadline:
                raise self._server.startup_error("did not accept connections")
            time.sleep(0.1)

    def _run_tool(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as_server_user(), str(self.bin_dir / tool), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=self.cluster_dir,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-2000:]
            raise StartupError(f"PostgreSQL {tool} failed (status {done.returncode}): {output}")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "LC_ALL": "C.UTF-8",
        }

    @staticmethod
    def _as_server_user() -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups"]


def _server_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError as error:
        raise StartupError(
            f"running as root needs the '{SERVER_USER}' account (apt-get install postgresql)"
        ) from error
