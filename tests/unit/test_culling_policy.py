"""The culler's rules, as pure functions: when a running server is due for a cull."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.culler import Policy, cull_due
from runtime.db.apps import CullPolicy
from schemas.lifecycle import CullReason

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEFAULTS = Policy(idle_timeout=3600, max_age=0, grace=300)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_an_apps_policy_overrides_only_what_it_sets() -> None:
    assert Policy.of(None, DEFAULTS) == DEFAULTS
    assert Policy.of(CullPolicy(idle_timeout_seconds=20), DEFAULTS) == Policy(20, 0, 300)
    assert Policy.of(CullPolicy(0, 7200, 0), DEFAULTS) == Policy(0, 7200, 0)


def test_idle_counts_from_the_last_activity_else_from_the_start() -> None:
    policy = Policy(idle_timeout=20, max_age=0, grace=5)
    assert cull_due(policy, NOW, ago(100), ago(19)) is None
    assert cull_due(policy, NOW, ago(100), ago(20)) == CullReason.IDLE
    assert cull_due(policy, NOW, ago(19), None) is None
    assert cull_due(policy, NOW, ago(21), None) == CullReason.IDLE


def test_max_age_wins_over_activity_and_zero_turns_a_rule_off() -> None:
    assert cull_due(Policy(20, 60, 5), NOW, ago(61), ago(1)) == CullReason.MAX_AGE
    assert cull_due(Policy(0, 0, 5), NOW, ago(10_000), ago(10_000)) is None
    assert cull_due(Policy(0, 60, 5), NOW, ago(30), ago(30)) is None
