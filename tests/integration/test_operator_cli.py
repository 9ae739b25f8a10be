"""Operator CLI against the real session stack (read-only): ``orchestrator queues``
(management API) and ``orchestrator command ID`` (database)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp

from devstack.stack import LocalStack
from schemas import topology as t

STATS_DEADLINE_SECONDS = 60.0  # the broker samples queue statistics every 5 s


def run_cli(stack: LocalStack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``orchestrator ARGS`` with the stack's settings (plus ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env={
            **stack.process_env(),
            "ORCH_MANAGEMENT_URL": stack.broker.management_url,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def queue_rows(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """``orchestrator queues --json`` as a dict by queue name."""
    done = run_cli(stack, "queues", "--json")
    assert done.returncode == 0, done.stderr
    return {row["queue"]: row for row in json.loads(done.stdout)}


def poll_queues(stack: LocalStack, ready: Any) -> dict[str, dict[str, Any]]:
    """Poll the queue rows until ``ready(rows)`` (statistics lag by a sampling interval)."""
    deadline = time.monotonic() + STATS_DEADLINE_SECONDS
    while True:
        rows = queue_rows(stack)
        if ready(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(1.0)


async def send_command(
    stack: LocalStack, http: aiohttp.ClientSession, app_key: str, user: str, correlation: str
) -> dict[str, Any]:
    """POST an ensure-user command and wait for its final status."""
    auth = {"Authorization": f"Bearer {app_key}"}
    async with http.post(
        f"{stack.gateway_url}/v1/commands",
        json={"type": "ensure-user", "user": user},
        headers={**auth, "X-Correlation-ID": correlation},
    ) as resp:
        assert resp.status == 202, await resp.text()
        command_id = (await resp.json())["id"]
    async with http.get(f"{stack.gateway_url}/v1/commands/{command_id}?wait=30", headers=auth) as r:
        done: dict[str, Any] = await r.json()
    assert done["status"] == "succeeded", done
    return done


def test_queues_lists_every_bus_queue_with_its_consumers(stack: LocalStack) -> None:
    partitions = t.Partitioning(stack.options.partitions).queues()

    def every_partition_consumed(rows: dict[str, dict[str, Any]]) -> bool:
        # Consumer lists are live; the per-queue "consumers" count lags one sample.
        return all(
            rows.get(q, {}).get("active_consumers") == 1 and rows[q]["consumers"] >= 1
            for q in partitions
        )

    rows = poll_queues(stack, every_partition_consumed)
    for name in partitions:
        assert rows[name]["type"] == "quorum"
        assert rows[name]["role"].startswith("commands, partition")
        assert rows[name]["active_consumers"] == 1, rows[name]  # single active consumer
        assert rows[name]["consumers"] >= 1, rows[name]
    assert rows[t.DEAD_LETTER_QUEUE]["role"] == "dead letters (parking lot)"
    for delay in t.RETRY_DELAYS_SECONDS:
        assert rows[t.retry_queue(delay)]["role"] == f"retry after {delay} s"
    assert all(name.startswith("orch.") for name in rows)


async def test_queues_counts_published_commands(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    before = queue_rows(stack)
    published_before = sum(
        before[q]["published_total"] for q in t.Partitioning(stack.options.partitions).queues()
    )
    for _ in range(3):
        await send_command(stack, http, app_key, f"u{uuid.uuid4().hex[:10]}", "ops-count")

    def counted(rows: dict[str, dict[str, Any]]) -> bool:
        total = sum(
            rows[q]["published_total"] for q in t.Partitioning(stack.options.partitions).queues()
        )
        return total >= published_before + 3

    assert counted(poll_queues(stack, counted))


def test_queues_human_table(stack: LocalStack) -> None:
    done = run_cli(stack, "queues")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[:5] == ["QUEUE", "ROLE", "TYPE", "READY", "UNACKED"]
    assert any(line.startswith(t.partition_queue(0) + " ") for line in lines)
    assert "PUBLISHED_TOTAL" not in header


def test_queues_reports_an_unreachable_or_refusing_api(stack: LocalStack) -> None:
    refused = run_cli(stack, "queues", ORCH_MANAGEMENT_PASSWORD="wrong-Pa55word")
    assert refused.returncode == 1
    assert "rejected the credentials" in refused.stderr
    assert "wrong-Pa55word" not in refused.stderr + refused.stdout
    unreachable = run_cli(stack, "queues", ORCH_MANAGEMENT_URL="http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "cannot reach the RabbitMQ management API" in unreachable.stderr


async def test_command_lookup_shows_status_and_correlation(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession, username: str
) -> None:
    correlation = f"ops-{uuid.uuid4().hex[:8]}"
    done = await send_command(stack, http, app_key, username, correlation)

    as_json = run_cli(stack, "command", done["id"], "--json")
    assert as_json.returncode == 0, as_json.stderr
    shown = json.loads(as_json.stdout)
    assert shown["id"] == done["id"]
    assert shown["status"] == "succeeded"
    assert shown["correlation_id"] == correlation
    assert shown["app"] == "tests" and shown["user"] == username
    assert shown["result"] == {"user": username, "created": True}

    human = run_cli(stack, "command", done["id"])
    assert human.returncode == 0, human.stderr
    fields = dict(line.split(None, 1) for line in human.stdout.splitlines() if line[:1].isalpha())
    assert fields["status"] == "succeeded"
    assert fields["correlation_id"] == correlation


def test_command_lookup_of_unknown_or_malformed_ids(stack: LocalStack) -> None:
    unknown = run_cli(stack, "command", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "no command" in unknown.stderr
    malformed = run_cli(stack, "command", "not-a-uuid")
    assert malformed.returncode == 2 and "not a command id" in malformed.stderr
