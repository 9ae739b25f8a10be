"""Rates over a fault timeline (devstack.reliability.timeline): pure logic."""

from __future__ import annotations

from devstack.reliability.timeline import (
    Mark,
    mean_rate,
    per_second,
    seconds_until_back,
    text_chart,
)


def test_per_second_bins_from_the_origin_and_drops_times_outside() -> None:
    assert per_second([100.2, 100.9, 101.0, 102.5, 99.9, 104.0], 100.0, 3) == [2, 1, 1]


def test_mean_rate_over_a_window() -> None:
    assert mean_rate([10, 20, 30, 40], 1, 3) == 25.0
    assert mean_rate([10], 5, 9) == 0.0


def test_rate_back_after_a_dent_counts_from_the_fault() -> None:
    series = [20, 20, 20, 5, 0, 12, 19, 20, 20]
    # 90 % of 20 is 18: seconds 6 and 7 are the first pair at or above it
    assert seconds_until_back(series, 3.4, 20.0) == 2.6


def test_an_undented_rate_is_back_at_once_and_a_dead_one_never() -> None:
    assert seconds_until_back([20, 20, 20, 20], 1.5, 20.0) == 0.0
    assert seconds_until_back([20, 20, 0, 0, 0], 2.0, 20.0) is None


def test_a_single_good_second_is_not_yet_back() -> None:
    assert seconds_until_back([20, 0, 20, 0, 20, 20], 1.0, 20.0) == 3.0


def test_text_chart_puts_marks_on_their_second_and_scales_the_first_series() -> None:
    chart = text_chart({"accepted": [10, 5], "done": [1, 2]}, [Mark(1.7, "kill")], width=10)
    lines = chart.splitlines()
    assert lines[0].split()[:2] == ["s", "accepted"]
    assert lines[1].startswith("   0  " + "#" * 10)
    assert lines[2].startswith("   1  " + "#" * 5 + " ")
    assert lines[2].endswith("<- kill")
    assert "<-" not in lines[1]


def test_text_chart_folds_the_idle_tail_into_one_line() -> None:
    lines = text_chart({"accepted": [3, 1, 0, 0, 0, 0]}).splitlines()
    assert len(lines) == 1 + 3 + 1  # header, seconds 0-2, the folded tail
    assert lines[-1].strip() == "(nothing more until second 5)"
