"""The ports of every configured JupyterHub: a workspace's commands, saves and culls use
the ports of the Hub it lives on (``Workspace.hub``, see :mod:`runtime.hubs`)."""

from __future__ import annotations

from collections.abc import Mapping

from consumers.errors import UnknownHub
from consumers.handlers import Ports


class HubPorts:
    """:class:`Ports` per Hub name, in configuration order (the first is where a
    workspace without a recorded Hub lives)."""

    def __init__(self, by_hub: Mapping[str, Ports]) -> None:
        if not by_hub:
            raise ValueError("at least one Hub is needed")
        self._by_hub = dict(by_hub)
        self._first = next(iter(self._by_hub))

    @classmethod
    def single(cls, ports: Ports, name: str = "default") -> HubPorts:
        """One Hub's ports (unit tests, single-Hub wiring)."""
        return cls({name: ports})

    @property
    def names(self) -> list[str]:
        """The Hubs' names, in configuration order."""
        return list(self._by_hub)

    def for_hub(self, name: str | None) -> Ports:
        """The ports of Hub ``name`` (the first Hub's for None); a Hub that is no longer
        configured is a permanent error naming it."""
        if name is None:
            return self._by_hub[self._first]
        try:
            return self._by_hub[name]
        except KeyError:
            raise UnknownHub(
                f"the workspace lives on Hub {name!r}, which is not configured "
                f"(configured: {', '.join(self._by_hub)})"
            ) from None

    def items(self) -> list[tuple[str, Ports]]:
        """(name, ports) of every Hub."""
        return list(self._by_hub.items())
