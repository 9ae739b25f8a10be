"""A child process with its own log file and a teardown that leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import psutil

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def devstack_python_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) for a Python child that imports ``devstack``, which is
    not installed: the repository root goes first on its ``PYTHONPATH``."""
    child = dict(os.environ if env is None else env)
    child["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPOSITORY_ROOT), child.get("PYTHONPATH", "")) if part
    )
    return child


class StartupError(RuntimeError):
    """A piece of local infrastructure did not become ready; the message names its log file."""


class PortInUseError(StartupError):
    """A process could not bind a port it was given (another process holds it)."""


# What the servers we start log when a port is taken: Python/aiohttp and PostgreSQL
# ("Address already in use"), Erlang/RabbitMQ (eaddrinuse, dist_port_already_used),
# configurable-http-proxy (EADDRINUSE).
_BIND_FAILURE_MARKERS = ("address already in use", "eaddrinuse", "dist_port_already_used")


def is_bind_failure(log_text: str) -> bool:
    """True if ``log_text`` shows a server failing to bind a port that was taken."""
    lowered = log_text.lower()
    return any(marker in lowered for marker in _BIND_FAILURE_MARKERS)


def snapshot_tree(pids: Iterable[int]) -> list[psutil.Process]:
    """Return the live processes among ``pids`` plus all their descendants (recursive).

    The snapshot holds ``psutil.Process`` objects, which remember each process's create
    time, so signalling them later cannot hit an unrelated process that reused the PID.
    """
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for member in members:
            found.setdefault(member.pid, member)
    return list(found.values())


def is_alive(process: psutil.Process) -> bool:
    """True if ``process`` still runs (a zombie awaiting its reaper counts as ended)."""
    try:
        running: bool = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        return running
    except psutil.Error:
        return False


def end_processes(
    leaders: Sequence[psutil.Process], everyone: Sequence[psutil.Process], timeout: float
) -> None:
    """SIGTERM ``leaders``, wait up to ``timeout`` s for them, then SIGKILL all of ``everyone``.

    Only the given (pre-recorded) processes are signalled, never anything found by name.
    """
    for leader in leaders:
        with contextlib.suppress(psutil.Error):
            leader.terminate()
    psutil.wait_procs(list(leaders), timeout=timeout)
    survivors = [process for process in everyone if is_alive(process)]
    for survivor in survivors:
        with contextlib.suppress(psutil.Error):
            survivor.kill()
    psutil.wait_procs(survivors, timeout=5)


class ManagedProcess:
    """One child process started in its own session, its output appended to ``log_path``.

    ``stop`` ends the process and every descendant it had when ``stop`` was called, so
    daemons that reparent themselves later are the caller's business (pass ``extra_pids``).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        umask: int = -1,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.pass_fds = tuple(pass_fds)  # e.g. a listening socket the child serves on
        self.umask = umask  # -1: inherit ours
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._descendants_seen: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        """The PID of the started process; raises ``RuntimeError`` before ``start``."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._popen.pid

    def start(self) -> None:
        """Launch the process (once); output goes to ``log_path``, appended across restarts."""
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._log_offset = log_file.tell()
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=self.umask,
                pass_fds=self.pass_fds,
            )

    def is_running(self) -> bool:
        """True while the started process has not exited.

        Each call also records the current descendants, so that children orphaned by a
        crash of the process (e.g. during startup) are still ended by ``stop``.
        """
        running = self._popen is not None and self._popen.poll() is None
        if running:
            for process in snapshot_tree([self.pid]):
                self._descendants_seen.setdefault(process.pid, process)
        return running

    def exit_code(self) -> int | None:
        """The exit status once the process has ended, else ``None``."""
        return None if self._popen is None else self._popen.poll()

    def wait_exit(self, timeout: float) -> int:
        """Block until the process exits by itself; its exit status (``TimeoutExpired``
        after ``timeout`` seconds)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._popen.wait(timeout)

    def process_ids(self) -> list[int]:
        """PIDs of the process and its current descendants (empty when not running)."""
        if not self.is_running():
            return []
        return [process.pid for process in snapshot_tree([self.pid])]

    def stop(
        self,
        timeout: float = 10,
        *,
        extra_pids: Iterable[int] = (),
        spare_pids: Iterable[int] = (),
    ) -> None:
        """End the process tree: SIGTERM the process, wait ``timeout`` s, SIGKILL leftovers.

        Descendants are recorded before any signal is sent, so children that outlive
        their parent are still killed. ``extra_pids`` (e.g. reparented servers) get the
        same treatment as the process, trees included; the trees of ``spare_pids`` are
        left alone. Idempotent.
        """
        roots = [self.pid] if self.is_running() else []
        leader_pids = {*roots, *extra_pids}
        spared = {process.pid for process in snapshot_tree(spare_pids)}
        candidates = {process.pid: process for process in snapshot_tree(leader_pids)}
        for pid, process in self._descendants_seen.items():
            if is_alive(process):
                candidates.setdefault(pid, process)
        everyone = [process for pid, process in candidates.items() if pid not in spared]
        leaders = [process for process in everyone if process.pid in leader_pids]
        end_processes(leaders, everyone, timeout)
        self._descendants_seen.clear()
        if self._popen is not None:
            self._popen.wait()

    def tail(self, n_lines: int = 40) -> str:
        """The last ``n_lines`` lines of the log (empty if there is no log yet)."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                size = log_file.tell()
                log_file.seek(max(0, size - 64 * 1024))
                text = log_file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-n_lines:])

    def log_since_start(self) -> str:
        """What the process logged since its latest ``start`` (a restart appends)."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(self._log_offset)
                return log_file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def startup_error(self, problem: str) -> StartupError:
        """The error for a failed start: :class:`PortInUseError` when the log since the
        start shows a bind failure (the caller may retry on other ports)."""
        message = self.describe_failure(problem)
        if is_bind_failure(self.log_since_start()):
            return PortInUseError(message)
        return StartupError(message)

    def describe_failure(self, problem: str) -> str:
        """An error message naming the process, its exit status and log, with the log tail."""
        status = self.exit_code()
        state = "running" if status is None else f"exited with status {status}"
        return (
            f"{self.name} {problem} ({state}); log: {self.log_path}\n"
            f"--- last lines of the log ---\n{self.tail()}"
        )
