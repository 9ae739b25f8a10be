"""The redaction rules of ``runtime.logs`` on a real structlog + stdlib pipeline
(one process configured as every orchestrator process is, writing JSON to stderr)."""

from __future__ import annotations

import json
import subprocess
import sys

from runtime.logs import REDACTED, redact_text

_LOGGING_PROCESS = r"""
import logging, structlog
from runtime.logs import configure_logging

configure_logging("redaction-test", json=True)
log = structlog.get_logger("t")
structlog.contextvars.bind_contextvars(command_id="c-1", correlation_id="r-1")
log.info("structlog line", hub_token="tok-SECRET1", launch_code="eyJhbGciOi.SECRET2",
         code="not_found", detail={"password": "SECRET3", "url": "amqp://u:SECRET4@h:5672/"},
         urls=["http://127.0.0.1/hub/launch?code=SECRET5"])
logging.getLogger("stdlib").warning("GET /x?token=SECRET6 Authorization: Basic SECRET7")
try:
    raise RuntimeError("cannot connect to postgresql+asyncpg://orch:SECRET8@db:5432/orch")
except RuntimeError:
    log.exception("crashed")
"""


def _stderr_of(code: str) -> str:
    """What a Python process running ``code`` wrote to stderr (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_every_secret_shape_is_redacted_and_ids_stay() -> None:
    stderr = _stderr_of(_LOGGING_PROCESS)
    assert "SECRET" not in stderr, stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    first, second, third = lines
    assert first["hub_token"] == REDACTED and first["launch_code"] == REDACTED
    assert first["code"] == "not_found"  # error codes are not secrets
    assert first["detail"]["password"] == REDACTED
    assert first["command_id"] == "c-1" and first["correlation_id"] == "r-1"
    assert second["command_id"] == "c-1"  # stdlib lines get the context too
    assert "RuntimeError" in third["exception"]


_ODD_VALUES_PROCESS = r"""
import structlog
from runtime.logs import configure_logging

configure_logging("odd-values", json=True)
structlog.get_logger("t").info("odd", big=2**80, by_number={1: "one"}, text="grüße")
"""


def test_values_orjson_refuses_are_still_logged() -> None:
    (line,) = [json.loads(text) for text in _stderr_of(_ODD_VALUES_PROCESS).splitlines()]
    assert line["big"] == 2**80 and line["by_number"] == {"1": "one"}
    assert line["text"] == "grüße" and line["process"] == "odd-values"


def test_free_text_patterns() -> None:
    code = "eyJ2IjoxLCJ1IjoiYWxpY2UifQ.YvwMOSKA9E5sWtU4rRM4Q1GeG_UMx4bN_amJPqNciJA"
    assert code not in redact_text(f"refused launch {code} for alice")
    assert redact_text("http://guest:pw@127.0.0.1:15672/api") == (
        f"http://guest:{REDACTED}@127.0.0.1:15672/api"
    )
    sha = "a" * 64  # content hashes are not secrets
    assert redact_text(f"saved version sha256={sha}") == f"saved version sha256={sha}"
