"""Named points where a process can be made to die on purpose, for fault tests.

``ORCH_FAILPOINTS`` (comma-separated names, e.g. ``after-commit:save``) arms them; a
process reaching an armed point exits at once with status 137, as if SIGKILLed: no
cleanup, no ack, no further publish. Unset (the default), :meth:`Failpoints.hit` is a
set lookup and does nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

KILLED_EXIT_STATUS = 137


class Failpoints:
    """The armed failpoints of this process."""

    def __init__(self, armed: Iterable[str] = ()) -> None:
        self._armed = frozenset(name.strip() for name in armed if name.strip())

    @classmethod
    def from_setting(cls, value: str) -> Failpoints:
        """Failpoints armed by a comma-separated setting (empty: none)."""
        return cls(value.split(","))

    def hit(self, name: str) -> None:
        """Die here, as if killed, when ``name`` is armed."""
        if name in self._armed:
            print(f"failpoint {name}: exiting as if killed", file=sys.stderr, flush=True)
            os._exit(KILLED_EXIT_STATUS)
