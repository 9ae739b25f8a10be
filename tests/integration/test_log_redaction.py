"""Real traffic through the session stack leaves no secret in any log, and every
consumer log line about a command carries the command id and the gateway's
correlation id.

Secrets exercised: the app key (and a forged one), the Hub service token (used by the
consumers on every Hub and contents call), the launch secret and the launch code of
an ``open`` (redeemed at the Hub), and an AMQP URL with a password (a broker user made
for this test, used by an extra standby consumer, plus a wrong password).
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devstack.process import ManagedProcess
from devstack.stack import LocalStack

LOG_DEADLINE_SECONDS = 60.0


def amqp_url_with(stack: LocalStack, user: str, password: str) -> str:
    """The stack's broker URL with other credentials."""
    port = urllib.parse.urlsplit(stack.broker.amqp_url).port
    return f"amqp://{user}:{password}@127.0.0.1:{port}/"


async def add_broker_user(
    http: aiohttp.ClientSession, stack: LocalStack, user: str, pw: str
) -> None:
    """Create a broker user with full rights on ``/`` (management API, as the node's user)."""
    api = stack.broker.management_url + "/api"
    admin = stack.broker.management_auth
    body = {"password": pw, "tags": ""}
    async with http.put(f"{api}/users/{user}", json=body, headers=admin) as r:
        assert r.status in (201, 204), await r.text()
    rights = {"configure": ".*", "write": ".*", "read": ".*"}
    async with http.put(f"{api}/permissions/%2F/{user}", json=rights, headers=admin) as r:
        assert r.status in (201, 204), await r.text()


def wait_for_log_line(path: Path, needle: str, process: ManagedProcess | None = None) -> None:
    """Poll ``path`` until a line contains ``needle`` (another process writes it)."""
    deadline = time.monotonic() + LOG_DEADLINE_SECONDS
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return
        if time.monotonic() > deadline:
            context = process.tail() if process is not None else text[-2000:]
            raise AssertionError(f"no log line with {needle!r} in {path}:\n{context}")
        time.sleep(0.2)


@pytest.fixture
def extra_processes() -> Iterator[list[ManagedProcess]]:
    """Processes a test appends here are stopped (by PID) after it, whatever happens."""
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        process.stop()


def start_extra_consumer(stack: LocalStack, amqp_url: str, log_path: Path) -> ManagedProcess:
    """A standby consumer (its partitions already have an active consumer)."""
    process = ManagedProcess(
        log_path.stem,
        [sys.executable, "-m", "orchestrator", "consumer", "--index", "1", "--count", "2"],
        log_path=log_path,
        env={**stack.process_env(), "ORCH_AMQP_URL": amqp_url},
    )
    process.start()
    return process


async def post_command(
    http: aiohttp.ClientSession, stack: LocalStack, key: str, body: dict[str, Any], corr: str
) -> dict[str, Any]:
    """Send a command and wait (long-poll) until it is final."""
    auth = {"Authorization": f"Bearer {key}"}
    async with http.post(
        f"{stack.gateway_url}/v1/commands", json=body, headers={**auth, "X-Correlation-ID": corr}
    ) as resp:
        assert resp.status == 202, await resp.text()
        command_id = (await resp.json())["id"]
    deadline = time.monotonic() + 180
    while True:
        url = f"{stack.gateway_url}/v1/commands/{command_id}?wait=30"
        async with http.get(url, headers=auth) as resp:
            view: dict[str, Any] = await resp.json()
        if view["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            assert view["status"] == "succeeded", view
            return view


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON log lines of ``path`` (other lines, e.g. child output, are skipped)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


async def test_no_secret_in_any_log_and_consumer_lines_carry_ids(
    stack: LocalStack,
    app_key: str,
    http: aiohttp.ClientSession,
    username: str,
    tmp_path: Path,
    extra_processes: list[ManagedProcess],
) -> None:
    broker_user, broker_password = f"u{uuid.uuid4().hex[:8]}", "pw-" + secrets.token_hex(12)
    wrong_password = "pw-" + secrets.token_hex(12)
    await add_broker_user(http, stack, broker_user, broker_password)
    good = start_extra_consumer(
        stack, amqp_url_with(stack, broker_user, broker_password), tmp_path / "consumer-pw.log"
    )
    extra_processes.append(good)
    bad = start_extra_consumer(
        stack, amqp_url_with(stack, broker_user, wrong_password), tmp_path / "consumer-bad.log"
    )
    extra_processes.append(bad)

    forged_key = "orch_" + secrets.token_urlsafe(32)
    async with http.post(
        f"{stack.gateway_url}/v1/commands",
        json={"type": "ensure-user", "user": username},
        headers={"Authorization": f"Bearer {forged_key}"},
    ) as resp:
        assert resp.status == 401

    path = "work/redaction.ipynb"
    sent: dict[str, str] = {}  # command id -> correlation id
    opened = await post_command(
        http, stack, app_key, {"type": "open", "user": username, "path": path}, "redact-open"
    )
    sent[opened["id"]] = "redact-open"
    launch_url = opened["result"]["launch_url"]
    codes = urllib.parse.parse_qs(urllib.parse.urlsplit(launch_url).query).get("code", [])
    if codes:  # redeem it at the Hub, as a browser would
        async with http.get(launch_url, allow_redirects=False) as resp:
            assert resp.status < 500
    for kind, corr in (("save", "redact-save"), ("stop-server", "redact-stop")):
        body = {"type": kind, "user": username, **({"path": path} if kind == "save" else {})}
        sent[(await post_command(http, stack, app_key, body, corr))["id"]] = corr

    wait_for_log_line(good.log_path, "consumer running", good)
    wait_for_log_line(bad.log_path, "broker not reachable yet", bad)
    good.stop()
    bad.stop()
    consumer_logs = sorted(stack.logs_dir.glob("consumer-*.log"))
    for command_id in sent:  # the canonical line is written after the result event
        wait_for_log_line_any(consumer_logs, command_id)

    secret_values = {
        "app key": app_key,
        "forged app key": forged_key,
        "Hub service token": stack.service_token,
        "AMQP password": broker_password,
        "wrong AMQP password": wrong_password,
        **{f"launch code {i}": code for i, code in enumerate(codes)},
    }
    launch_secret = getattr(stack, "launch_secret", None)
    if launch_secret:
        secret_values["launch secret"] = launch_secret
    log_files = [
        *sorted(stack.logs_dir.rglob("*.log")),
        stack.hub.log_path,
        good.log_path,
        bad.log_path,
    ]
    leaks = [
        f"{what} in {log}"
        for log in log_files
        for what, value in secret_values.items()
        if value in log.read_text(errors="replace")
    ]
    assert leaks == []

    about_ours = [
        line for log in consumer_logs for line in json_lines(log) if line.get("command_id") in sent
    ]
    assert {line["command_id"] for line in about_ours} == set(sent)
    for line in about_ours:
        assert line.get("correlation_id") == sent[line["command_id"]], line
    gateway_lines = [
        line
        for line in json_lines(stack.logs_dir / "gateway.log")
        if line.get("command_id") in sent
    ]
    assert {line["command_id"] for line in gateway_lines} == set(sent)
    for line in gateway_lines:
        assert line.get("correlation_id") == sent[line["command_id"]], line
    for log in consumer_logs:
        for line in json_lines(log):
            if "command_id" in line:
                assert line.get("correlation_id"), line
            elif any(command_id in json.dumps(line) for command_id in sent):
                pytest.fail(f"a line mentions one of our commands without its id: {line}")


def wait_for_log_line_any(paths: list[Path], needle: str) -> None:
    """Poll until one of ``paths`` has a line containing ``needle``."""
    deadline = time.monotonic() + LOG_DEADLINE_SECONDS
    while not any(needle in p.read_text(errors="replace") for p in paths if p.exists()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no consumer log line mentions {needle}")
        time.sleep(0.2)
