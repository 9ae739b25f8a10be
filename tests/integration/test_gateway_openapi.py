"""The served OpenAPI document matches what the gateway does: schemathesis against the
running gateway (real broker) finds no 5xx and no response that breaks the document.

Own stack with ``ORCH_MAX_WAIT_SECONDS=1``: the document bounds ``?wait=`` by that
setting, and generated long-polls on commands nobody consumes must stay short.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack, StackOptions

pytestmark = pytest.mark.slow
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# positive_data_acceptance would demand 2xx for every schema-valid body, but e.g. a
# valid notebook path may still be refused by rules JSON Schema cannot express;
# object_level_authorization needs a second auth context (tested directly instead).
EXCLUDED_CHECKS = "positive_data_acceptance,object_level_authorization"


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("gateway-openapi")
    stack = LocalStack(
        state,
        StackOptions(
            consumers=0,
            hub=False,
            hub_service=False,
            extra_env={"ORCH_MAX_WAIT_SECONDS": "1"},
        ),
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(
    fuzz_stack: LocalStack, tmp_path: Path
) -> None:
    key = fuzz_stack.issue_app_key("schemathesis")
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{fuzz_stack.gateway_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--exclude-path",
            "/v1/events",  # an endless stream; covered by test_gateway_events
            "--max-examples",
            "20",
            "--seed",
            "20261122",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "passed" in run.stdout, report
