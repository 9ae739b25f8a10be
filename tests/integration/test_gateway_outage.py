"""202 only after the broker confirmed: with the REAL broker stopped, commands are refused.

Stops the broker, so it runs on its own stack (broker + gateway, no Hub).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from sqlmodel import col, select

from devstack.stack import LocalStack, StackOptions
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import CommandRecord, CommandStatus
from tests.integration.gateway_client import bus_messages, post_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("gateway-outage")
    stack = LocalStack(state, StackOptions(consumers=0, hub=False, hub_service=False))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def _ready(gw: aiohttp.ClientSession) -> int:
    async with gw.get("/readyz") as resp:
        return resp.status


def _before(deadline: float, what: str) -> None:
    """Polling step (nothing announces these changes): fail once ``deadline`` passed."""
    assert time.monotonic() < deadline, f"timed out waiting for {what}"


async def _commands_where(stack: LocalStack, condition: Any) -> list[CommandRecord]:
    engine = make_engine(stack.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return list((await session.exec(select(CommandRecord).where(condition))).all())
    finally:
        await engine.dispose()


async def test_broker_down_means_503_never_202_and_recovery_brings_202_back(
    outage_stack: LocalStack,
) -> None:
    key = await asyncio.to_thread(outage_stack.issue_app_key, "outage-app")
    retry_key = f"retry-{uuid.uuid4()}"
    async with aiohttp.ClientSession(
        base_url=outage_stack.gateway_url, timeout=aiohttp.ClientTimeout(total=60)
    ) as gw:

        async def send(user: str, **headers: str) -> tuple[int, dict[str, str], dict[str, Any]]:
            return await post_command(gw, key, {"type": "ensure-user", "user": user}, **headers)

        accepted_key = f"accepted-{uuid.uuid4()}"
        status, _, accepted = await send("before", **{"Idempotency-Key": accepted_key})
        assert status == 202
        await asyncio.to_thread(outage_stack.broker.stop_broker_only)
        try:
            deadline = time.monotonic() + 30
            while await _ready(gw) == 200:
                _before(deadline, "/readyz to report not ready")
                await asyncio.sleep(0.2)
            async with gw.get("/readyz") as resp:
                assert (await resp.json())["checks"]["broker"] == "down"

            status, headers, body = await send("during", **{"Idempotency-Key": retry_key})
            assert status == 503
            assert int(headers["Retry-After"]) > 0
            assert body["error"]["code"] == "bus_unavailable"
            assert "not accepted" in body["error"]["message"]
            for i in range(5):
                assert (await send(f"during-{i}"))[0] == 503
            # refused before anything is written, with a key or without
            during = ["during", *(f"during-{i}" for i in range(5))]
            assert await _commands_where(outage_stack, col(CommandRecord.user).in_(during)) == []
            # a replay of a command accepted before needs no bus: answered from the record
            status, headers, replayed = await send("before", **{"Idempotency-Key": accepted_key})
            assert (status, headers.get("Idempotent-Replayed")) == (202, "true")
            assert replayed["id"] == accepted["id"]
            # ... and the key's other body is still a conflict
            status, _, body = await send("other", **{"Idempotency-Key": accepted_key})
            assert (status, body["error"]["code"]) == (409, "idempotency_conflict")
        finally:
            await asyncio.to_thread(outage_stack.broker.start_again)

        # the robust connection comes back by itself; 503 until it has
        deadline = time.monotonic() + 60
        attempt = 0
        while (status := (await send(f"after-{attempt}"))[0]) != 202:
            assert status == 503
            _before(deadline, "a 202 after the restart")
            attempt += 1
            await asyncio.sleep(0.2)
        assert await _ready(gw) == 200

        # the refused command, retried with its Idempotency-Key, is accepted now
        status, _, retried = await send("during", **{"Idempotency-Key": retry_key})
        assert status == 202 and retried["status"] == "accepted"
        assert len(await bus_messages(outage_stack, retried["id"])) == 1
        [record] = await _commands_where(
            outage_stack, col(CommandRecord.idempotency_key) == retry_key
        )
        assert str(record.id) == retried["id"]


async def test_readiness_fails_within_seconds_when_the_broker_freezes(
    outage_stack: LocalStack,
) -> None:
    """SIGSTOP leaves every connection open but unanswered: readiness must notice anyway,
    and a command the frozen broker never confirms is refused and kept ``rejected``
    until its retry with the same Idempotency-Key revives it."""
    key = await asyncio.to_thread(outage_stack.issue_app_key, "freeze-app")
    retry_key = f"frozen-{uuid.uuid4()}"
    frozen = [psutil.Process(pid) for pid in outage_stack.broker.process_ids()]
    async with aiohttp.ClientSession(base_url=outage_stack.gateway_url) as gw:

        async def send() -> tuple[int, dict[str, str], dict[str, Any]]:
            command = {"type": "ensure-user", "user": "frozen"}
            return await post_command(gw, key, command, **{"Idempotency-Key": retry_key})

        assert await _ready(gw) == 200
        for process in frozen:
            process.suspend()
        try:
            frozen_at = time.monotonic()
            deadline = frozen_at + 10
            while await _ready(gw) != 503:
                _before(deadline, "readiness to fail with the broker frozen")
            noticed_after = time.monotonic() - frozen_at
            # still connected as far as the gateway knows: recorded, never confirmed
            status, _, body = await send()
            assert (status, body["error"]["code"]) == (503, "bus_unavailable")
            [refused] = await _commands_where(
                outage_stack, col(CommandRecord.idempotency_key) == retry_key
            )
            assert refused.status == CommandStatus.REJECTED  # never left looking accepted
        finally:
            for process in frozen:
                process.resume()
        deadline = time.monotonic() + 30
        while await _ready(gw) != 200:
            _before(deadline, "readiness to come back with the broker thawed")
        status, _, revived = await send()
        assert status == 202
        assert revived["id"] == str(refused.id) and revived["status"] == "accepted"
        # on the bus now (the unconfirmed publish may surface too once the broker thaws:
        # consumers take a command's message at least once)
        assert await bus_messages(outage_stack, revived["id"])
    assert noticed_after < 5
