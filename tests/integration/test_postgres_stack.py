"""The real gateway, consumer and operator CLI run on PostgreSQL, chosen by URL only:
a stack of our own whose ``ORCH_DATABASE_URL`` points at a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import aiohttp
import asyncpg
import pytest

from devstack.postgres import PostgresServer
from devstack.stack import LocalStack, StackOptions

pytest_plugins = ["tests.integration.database_fixtures"]


@pytest.fixture(scope="module")
def pg_stack(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalStack, str]]:
    """A stack (broker, Hub, gateway, two consumers) whose database is PostgreSQL."""
    database = f"stack_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(database)
    options = StackOptions(consumers=2, hub_service=False, extra_env={"ORCH_DATABASE_URL": url})
    local = LocalStack(tmp_path_factory.mktemp("pg-stack"), options)
    local.start()  # gateway and consumers migrate the empty database at once
    try:
        yield local, database
    finally:
        local.stop()


@pytest.mark.slow
async def test_commands_flow_through_postgres(
    pg_stack: tuple[LocalStack, str], postgres_server: PostgresServer
) -> None:
    stack, database = pg_stack
    key = stack.issue_app_key("pg-tests")
    auth = {"Authorization": f"Bearer {key}"}
    user = f"u{uuid.uuid4().hex[:10]}"
    body = {"type": "ensure-user", "user": user}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        ids = []
        for _ in range(2):
            async with http.post(
                f"{stack.gateway_url}/v1/commands",
                json=body,
                headers={**auth, "Idempotency-Key": "pg-1", "X-Correlation-ID": "pg-corr"},
            ) as resp:
                assert resp.status in (200, 202), await resp.text()
                ids.append((await resp.json())["id"])
        assert ids[0] == ids[1]
        async with http.get(f"{stack.gateway_url}/v1/commands/{ids[0]}?wait=30", headers=auth) as r:
            done = await r.json()
    assert done["status"] == "succeeded", done

    connection = await asyncpg.connect(
        host="127.0.0.1",
        port=postgres_server.port,
        user=postgres_server.user,
        password=postgres_server.password,
        database=database,
    )
    try:
        row = await connection.fetchrow(
            'SELECT status, correlation_id, attempts FROM command WHERE "user" = $1', user
        )
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    assert row is not None and dict(row) == {
        "status": "succeeded",
        "correlation_id": "pg-corr",
        "attempts": 1,
    }
    assert version is not None

    shown = await asyncio.to_thread(stack.orchestrator_cli, "command", ids[0], "--json")
    assert json.loads(shown)["status"] == "succeeded"
