"""Running independent start-up and shut-down steps at once, in threads."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def in_parallel(*steps: Callable[[], object]) -> None:
    """Run every step in a thread of its own and return once all have ended.

    Every step runs to its end even when another fails; the first failure (in the
    order given) is then raised. One step or none runs in the calling thread.
    """
    if len(steps) <= 1:
        for step in steps:
            step()
        return
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        futures = [pool.submit(step) for step in steps]
    for future in futures:
        future.result()
