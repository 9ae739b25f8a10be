"""Rates per second over a fault timeline: how far a fault dents them, how long until
they are back, and a small text chart to print them.

Seconds are counted from a scenario's origin (a monotonic time); a series is a list of
counts, one per whole second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def per_second(times: Iterable[float], origin: float, seconds: int) -> list[int]:
    """How many of ``times`` (monotonic) fall in each second ``[origin + s, origin + s + 1)``
    for ``s`` in ``range(seconds)``; times outside are not counted."""
    series = [0] * seconds
    for t in times:
        second = math.floor(t - origin)
        if 0 <= second < seconds:
            series[second] += 1
    return series


def mean_rate(series: list[int], start: int, end: int) -> float:
    """Mean count per second over seconds ``[start, end)`` (0 when empty)."""
    window = series[max(0, start) : max(0, end)]
    return sum(window) / len(window) if window else 0.0


def seconds_until_back(
    series: list[int], fault_second: float, baseline: float, *, fraction: float = 0.9
) -> float | None:
    """Seconds from the fault until the rate is back to ``fraction`` of ``baseline``:
    the start of the first whole second at or after the fault that, with the next one,
    reaches it (0.0 when the fault never dented it). None when it never came back."""
    wanted = fraction * baseline
    for second in range(int(fault_second), len(series) - 1):
        if series[second] >= wanted and series[second + 1] >= wanted:
            return max(0.0, second - fault_second)
    return None


@dataclass(frozen=True)
class Mark:
    """A fault (or recovery) on the timeline, ``at`` seconds after the origin."""

    at: float
    label: str


def text_chart(
    series: Mapping[str, list[int]], marks: Iterable[Mark] = (), *, width: int = 40
) -> str:
    """One line per second: the counts of every series (the first also as a bar), and
    the marks that fell within that second; seconds after the last count are one line."""
    names = list(series)
    full = max((len(s) for s in series.values()), default=0)
    busy = [i for s in series.values() for i, count in enumerate(s) if count]
    length = min(full, max(busy, default=-1) + 2)  # trailing idle seconds: one line
    top = max((max(s, default=0) for s in series.values()), default=0) or 1
    by_second: dict[int, list[str]] = {}
    for mark in marks:
        by_second.setdefault(math.floor(mark.at), []).append(mark.label)
    header = f"{'s':>4}  {names[0] if names else '':<{width}}  " + "  ".join(
        f"{n:>8}" for n in names
    )
    lines = [header]
    for second in range(length):
        counts = [s[second] if second < len(s) else 0 for s in series.values()]
        bar = "#" * round(counts[0] * width / top) if counts else ""
        note = "  <- " + "; ".join(by_second[second]) if second in by_second else ""
        values = "  ".join(f"{c:>8}" for c in counts)
        lines.append(f"{second:>4}  {bar:<{width}}  {values}{note}")
    if length < full:
        lines.append(f"{'':>4}  (nothing more until second {full - 1})")
    return "\n".join(lines)
