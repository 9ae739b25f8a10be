"""Watching the dev stack's children: a process that died is reported and restarted.

``make run`` runs the whole stack in the foreground; when a consumer, the gateway or
the demo app exits (killed, crashed), :class:`Supervisor` says so in the terminal and
starts it again, up to ``restart_limit`` times per process. Past the limit it gives up
on the stack (a process that keeps dying needs a person). The Hub and the broker are
not restarted: their state does not survive a restart of the dev stack anyway, and a
failure there is reported and ends the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.hub import JupyterHubProcess
from devstack.process import ManagedProcess
from devstack.stack import LocalStack

DEFAULT_RESTART_LIMIT = 3


class GaveUp(Exception):
    """A child died more often than allowed, or one that cannot be restarted died."""


@dataclass
class _Child:
    name: str
    process: Callable[[], ManagedProcess | None]
    restart: Callable[[], None] | None
    restarts: int = 0


@dataclass
class Supervisor:
    """Checks the stack's children; :meth:`check` reports and restarts the dead ones."""

    stack: LocalStack
    restart_demo: Callable[[], None] | None = None
    restart_limit: int = DEFAULT_RESTART_LIMIT
    report: Callable[[str], None] = print
    _children: list[_Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        stack = self.stack
        self._children.append(_Child("gateway", lambda: stack.gateway, stack.start_gateway))
        for index in range(len(stack.consumers)):
            self._children.append(_consumer_child(stack, index))
        if self.restart_demo is not None and stack.extra_processes:
            self._children.append(
                _Child("demo", lambda: stack.extra_processes[0], self.restart_demo)
            )
        for index in range(1, len(stack.gateway_urls)):
            self._children.append(_extra_gateway_child(stack, index))
        if stack.options.hub:
            for index, hub in enumerate(stack.hubs):
                self._children.append(_hub_child(hub, index))
        self._children.append(_Child("rabbitmq", lambda: stack.broker.server_process, None))

    def check(self) -> None:
        """Report and restart every child that is not running; raise :class:`GaveUp`
        when one may not be restarted (again)."""
        for child in self._children:
            process = child.process()
            if process is None or process.is_running():
                continue
            status = process.exit_code()
            if child.restart is None:
                raise GaveUp(f"{child.name} exited (status {status}); see {process.log_path}")
            if child.restarts >= self.restart_limit:
                raise GaveUp(
                    f"{child.name} exited (status {status}) after {child.restarts} restarts; "
                    f"giving up. See {process.log_path}"
                )
            child.restarts += 1
            self.report(
                f"!! {child.name} exited (status {status}); restarting it "
                f"({child.restarts}/{self.restart_limit}). Log: {process.log_path}"
            )
            child.restart()
            self.report(f"   {child.name} is running again")


def _consumer_child(stack: LocalStack, index: int) -> _Child:
    def restart() -> None:
        stack.start_consumer(index)

    return _Child(f"consumer-{index}", lambda: stack.consumers[index], restart)


def _extra_gateway_child(stack: LocalStack, index: int) -> _Child:
    """Gateway ``index`` (1, 2, ...) beside the first; restarted on a port of its own."""

    def restart() -> None:
        stack.start_extra_gateway(index)

    return _Child(f"gateway-{index + 1}", lambda: stack.extra_gateways[index - 1][0], restart)


def _hub_child(hub: JupyterHubProcess, index: int) -> _Child:
    """Hub ``index`` (0-based): watched; the stack gives up when it exits (not restarted)."""
    name = "jupyterhub" if index == 0 else f"jupyterhub-{index + 1}"
    return _Child(name, lambda: hub.process, None)
