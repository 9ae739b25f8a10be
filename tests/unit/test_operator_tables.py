"""Operator tables keep one line per row, whatever the values hold."""

from __future__ import annotations

import pytest

from orchestrator.operator.tables import print_rows


def test_a_multi_line_reason_stays_on_its_row(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"id": "1", "reason": "handler crashed:\nTraceback ...\n  KeyError: 'x'"},
        {"id": "22", "reason": "poison"},
    ]
    print_rows(rows, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header + one line per row
    assert lines[1].split(None, 1) == ["1", "handler crashed: ⏎ Traceback ... ⏎ KeyError: 'x'"]
    assert lines[2].startswith("22  poison")


def test_json_rows_keep_the_values_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([{"reason": "a\nb"}], as_json=True)
    assert '"a\\nb"' in capsys.readouterr().out
