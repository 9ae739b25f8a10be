"""Run every reliability scenario, one after the other, and print one table.

Each scenario is its own script with its own stack (run in a subprocess, so a crash
in one does not hide the others); their full figures are printed as they finish,
then a summary table. Exit status 1 when any property did not hold.

    .venv/bin/python bench/reliability/run_all.py [--quick] [--only soak,bad_input]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# script name → the figures shown in the summary table
SCENARIOS: dict[str, list[str]] = {
    "broker_restart": [
        "202 before the broker was back",
        "recovery: first 202 after broker up (s)",
        "accepted commands",
        "final states",
    ],
    "consumer_kills": ["saves sent", "versions made by saves", "final states"],
    "hub_faults": ["faults injected", "in-process retries (tenacity)", "retry-queue rounds"],
    "hub_restart": ["spawns pending when the Hub restarted", "ratio disturbed / baseline"],
    "bad_input": [
        "generated requests (schemathesis)",
        "hand-made answers by status",
        "poison messages dead-lettered",
    ],
    "soak": ["achieved rate (cmd/s)", "RSS growth after warm-up (%)"],
    "node_loss": [
        "answered 503 (bus failing over)",
        "5xx other than 503",
        "back to 90% accepted rate after (s)",
        "final states",
    ],
}
SCRIPT_SECONDS_LIMIT = 3600  # every script bounds itself; this catches a hang


def _run(name: str, quick: bool, out: Path) -> dict[str, Any]:
    argv = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out)]
    if quick:
        argv.append("--quick")
    started = time.monotonic()
    try:
        done = subprocess.run(argv, timeout=SCRIPT_SECONDS_LIMIT, check=False)
        code: int | str = done.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    if out.exists():
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    return {
        "scenario": name,
        "figures": {"scenario wall time (s)": round(time.monotonic() - started)},
        "problems": [f"script ended with {code} and wrote no result"],
    }


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def main() -> int:
    """Run the chosen scenarios and print the summary table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for every scenario")
    parser.add_argument("--only", help="comma-separated script names (default: all)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SCENARIOS)
    results = []
    with tempfile.TemporaryDirectory(prefix="orch-reliability-all-") as tmp:
        for name in names:
            print(f"\n### {name}", flush=True)
            results.append((name, _run(name, args.quick, Path(tmp) / f"{name}.json")))
    print("\n| scenario | held | wall (s) | figures |\n|---|---|---|---|")
    for name, result in results:
        figures = result["figures"]
        shown = "; ".join(f"{f}: {_show(figures[f])}" for f in SCENARIOS[name] if f in figures)
        held = "yes" if not result["problems"] else "NO: " + " / ".join(result["problems"])
        print(
            f"| {result['scenario']} | {held} | {figures.get('scenario wall time (s)')} | {shown} |"
        )
    return 1 if any(result["problems"] for _, result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
