"""The monitoring files under ``monitoring/`` are valid and speak the project's metrics.

Checked here:

- ``promtool check rules monitoring/alerts.yml`` and ``promtool test rules
  monitoring/alerts-test.yml`` succeed (each alert fires on a failing series, none on an
  idle healthy stack). ``promtool`` comes with Debian's ``prometheus`` package, which
  ``make test`` installs: a machine without it fails here rather than skipping.
- Every alert has ``for``, a ``severity`` of page or ticket, a summary and a description;
  every alert is exercised by the promtool tests, firing in one case and silent in the
  idle one.
- Every metric name the alerts and the Grafana dashboard mention is one the processes
  export (``runtime/metrics.py``, the hub service's notifications counter) or one of the
  RabbitMQ per-queue series used; every exported metric has a dashboard panel; every
  dashboard query parses (promtool, through a throwaway rules file).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]  # no stubs in the venv
from prometheus_client.metrics import MetricWrapperBase

from hub_service import notify_api
from runtime import metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts-test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

METRIC_NAME = re.compile(r"\b(?:orch|rabbitmq)_[a-z_]+")
# RabbitMQ's own series (rabbitmq_prometheus, per-object) the rules and panels may use.
RABBITMQ_SERIES = frozenset({"rabbitmq_queue_messages_ready", "rabbitmq_queue_consumers"})
SEVERITIES = frozenset({"page", "ticket"})


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: `make test` installs it (Debian's `prometheus` "
            "package, see TEST_PACKAGES in the Makefile); or run "
            "`apt-get install --no-install-recommends prometheus`"
        )
    return path


def _run_promtool(*args: str) -> None:
    result = subprocess.run(
        [_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def _project_metrics() -> list[MetricWrapperBase]:
    found = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    found.append(notify_api.NOTIFICATIONS)
    return found


def _exposed_names(metric: MetricWrapperBase) -> set[str]:
    """The sample names a metric is scraped as (a Counter gains ``_total``, a Histogram
    is only ``_bucket``, ``_count`` and ``_sum``)."""
    names: set[str] = set()
    for family in metric.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def _exported() -> dict[str, set[str]]:
    """Each project metric's family name → the names it is exposed under."""
    return {
        family.name: _exposed_names(metric)
        for metric in _project_metrics()
        for family in metric.collect()
    }


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules, "no rules in monitoring/alerts.yml"
    return rules


def _alerts() -> list[dict[str, Any]]:
    alerts = [rule for rule in _alert_rules() if "alert" in rule]
    assert alerts, "no alerting rules in monitoring/alerts.yml"
    return alerts


def _dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _dashboard_panels(panel.get("panels", []))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in _dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    assert exprs, "no panel queries in monitoring/grafana-dashboard.json"
    return exprs


def _names_in(texts: list[str]) -> set[str]:
    return {name for text in texts for name in METRIC_NAME.findall(text)}


def test_promtool_checks_the_rules() -> None:
    _run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_promtool_unit_tests_pass() -> None:
    _run_promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


def test_every_alert_has_for_severity_and_annotations() -> None:
    for alert in _alerts():
        name = alert["alert"]
        assert alert.get("for"), f"{name}: no `for`"
        assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = alert.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name}: no summary"
        assert annotations.get("description", "").strip(), f"{name}: no description"


def test_every_alert_fires_in_a_test_and_stays_silent_when_idle() -> None:
    names = {alert["alert"] for alert in _alerts()}
    cases = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert names - fired == set(), f"alerts no promtool test fires: {sorted(names - fired)}"
    idle = [case for case in cases if case["name"].startswith("idle healthy stack")]
    assert len(idle) == 1, "one 'idle healthy stack' case expected in alerts-test.yml"
    checks = idle[0]["alert_rule_test"]
    assert all(check["exp_alerts"] == [] for check in checks)
    silent = {check["alertname"] for check in checks}
    assert names - silent == set(), f"alerts not checked when idle: {sorted(names - silent)}"
    eval_times = {check["eval_time"] for check in checks}
    assert len(eval_times) >= 3 and "65m" in eval_times, eval_times


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    """Queries name series as scraped; annotations (prose) may also name a histogram."""
    exported = _exported()
    assert "orch_contents_notifications" in exported and "orch_hub_call_seconds" in exported
    series = set().union(*exported.values()) | RABBITMQ_SERIES
    rules = _alert_rules()
    prose = [text for rule in rules for text in rule.get("annotations", {}).values()]
    for where, texts, known in (
        ("alerts.yml expressions", [rule["expr"] for rule in rules], series),
        ("alerts.yml annotations", prose, series | set(exported)),
        ("dashboard queries", _dashboard_exprs(), series),
    ):
        used = _names_in(texts)
        assert used, f"no metric names found in {where}"
        assert used - known == set(), f"{where} use unknown metrics: {sorted(used - known)}"


def test_every_exported_metric_has_a_panel() -> None:
    exported = _exported()
    used = _names_in(_dashboard_exprs())
    missing = {family for family, names in exported.items() if not names & used}
    assert missing == set(), f"metrics without a dashboard panel: {sorted(missing)}"


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Grafana's ``$__rate_interval`` aside, each panel query is PromQL promtool accepts."""
    exprs = [expr.replace("$__rate_interval", "5m") for expr in _dashboard_exprs()]
    rules = [{"record": f"dashboard:query_{i}:check", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _run_promtool("check", "rules", str(path))
