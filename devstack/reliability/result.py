"""What a reliability scenario reports: its figures and the properties that failed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScenarioResult:
    """Figures (name → value, in print order) and problems (empty when all held)."""

    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)  # printed after the figures
    evidence: list[str] = field(default_factory=list)  # printed after the problems

    def check(self, holds: bool, problem: str) -> None:
        """Record ``problem`` unless ``holds``."""
        if not holds:
            self.problems.append(problem)

    def render(self) -> str:
        """A human-readable block: one figure per line, then the problems (or OK)."""
        width = max((len(name) for name in self.figures), default=0)
        lines = [f"== {self.scenario}"]
        lines += [f"  {name.ljust(width)}  {_show(value)}" for name, value in self.figures.items()]
        lines += [line for chart in self.charts for line in ("", chart, "")]
        if self.problems:
            lines += ["  PROBLEMS:", *(f"  - {p}" for p in self.problems)]
            if self.evidence:
                lines += ["  LOGGED ERRORS:", *(f"    {e}" for e in self.evidence)]
        else:
            lines.append("  all properties held")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The result as JSON (for ``bench/reliability/run_all.py``)."""
        return json.dumps(
            {"scenario": self.scenario, "figures": self.figures, "problems": self.problems},
            default=str,
        )


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "-"
    return str(value)
