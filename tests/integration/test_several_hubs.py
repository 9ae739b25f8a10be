"""Several JupyterHubs behind one command API: two real Hubs (weights 1 and 3), each with
its own proxy, database and hub service, sharing the broker and the database.

New users are placed by weighted rendezvous hashing and exist on their Hub only; the
placement is stored and survives consumers restarted with other weights; a user's
server, launch link and save events are on (and name) the user's Hub.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import aiohttp
import pytest
from sqlmodel import col, select

from devstack.process import StartupError
from devstack.reliability.load import RELIABILITY_APP
from devstack.reliability.notebooks import NOTEBOOK_PATH, put_notebook, run_commands
from devstack.stack import LocalStack, StackOptions
from orchestrator.operator.subscribe import subscribe_events
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import WorkspaceRecord
from schemas.workspaces import workspace_name

WEIGHTS = [1.0, 3.0]
USERS = 160

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        consumers=2,
        hubs=2,
        hub_weights=WEIGHTS,
        extra_env={"ORCH_HUB_CHECK_INTERVAL_SECONDS": "1"},
    )
    local = LocalStack(tmp_path_factory.mktemp("several-hubs"), options)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def app_key(stack: LocalStack) -> str:
    return stack.issue_app_key(RELIABILITY_APP)


async def _placed(stack: LocalStack, users: list[str]) -> dict[str, str | None]:
    """The Hub each of ``users`` is recorded on (their workspace in the scenarios' app)."""
    names = {workspace_name(RELIABILITY_APP, u): u for u in users}
    engine = make_engine(stack.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.exec(
                select(WorkspaceRecord).where(col(WorkspaceRecord.name).in_(list(names)))
            )
            return {names[r.name]: r.hub for r in rows.all()}
    finally:
        await engine.dispose()


async def _on_hub(http: aiohttp.ClientSession, stack: LocalStack, index: int, user: str) -> bool:
    """Whether Hub ``index`` has ``user``'s workspace as a Hub user."""
    name = quote(workspace_name(RELIABILITY_APP, user))
    headers = {"Authorization": f"token {stack.service_token}"}
    async with http.get(f"{stack.hubs[index].api_url}/users/{name}", headers=headers) as r:
        assert r.status in (200, 404), await r.text()
        return r.status == 200


async def _ensure(stack: LocalStack, key: str, users: list[str]) -> None:
    views = await run_commands(
        stack, key, [{"type": "ensure-user", "user": u} for u in users], within=120
    )
    assert {v["status"] for v in views} == {"succeeded"}, [v for v in views if v.get("error")]


async def test_new_users_spread_by_weight_and_live_on_their_hub_only(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    users = [f"w{uuid.uuid4().hex[:6]}n{i}" for i in range(USERS)]
    await _ensure(stack, app_key, users)
    placed = await _placed(stack, users)
    counts = Counter(placed.values())
    assert set(counts) == {"hub-1", "hub-2"}, counts
    share = counts["hub-2"] / USERS  # 3 of 4 by weight; 3 sigma of a binomial: 0.10
    assert abs(share - 0.75) < 0.10, counts
    sample = users[:20]
    on_hub = await asyncio.gather(*(_on_hub(http, stack, i, u) for u in sample for i in (0, 1)))
    for n, user in enumerate(sample):
        expected = [placed[user] == "hub-1", placed[user] == "hub-2"]
        assert list(on_hub[2 * n : 2 * n + 2]) == expected, (user, placed[user])


async def test_placement_survives_consumers_restarted_with_other_weights(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    users = [f"s{uuid.uuid4().hex[:6]}n{i}" for i in range(40)]
    await _ensure(stack, app_key, users)
    before = await _placed(stack, users)
    flipped = [
        {**spec.model_dump(mode="json"), "token": stack.service_token, "weight": w}
        for spec, w in zip(stack.hub_specs(), reversed(WEIGHTS), strict=True)
    ]
    for index, consumer in enumerate(stack.consumers):
        consumer.stop()
        stack.start_consumer(index, extra_env={"ORCH_HUBS": json.dumps(flipped)})
    await _ensure(stack, app_key, users)  # the same users again, other weights now
    assert await _placed(stack, users) == before
    for user in users[:10]:
        other = 1 if before[user] == "hub-1" else 0
        assert not await _on_hub(http, stack, other, user), user
    newcomers = [f"f{uuid.uuid4().hex[:6]}n{i}" for i in range(USERS)]
    await _ensure(stack, app_key, newcomers)
    counts = Counter((await _placed(stack, newcomers)).values())
    assert abs(counts["hub-1"] / USERS - 0.75) < 0.10, counts  # the new weights hold


async def test_a_users_server_link_and_save_events_are_on_its_hub(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    users = [f"o{uuid.uuid4().hex[:6]}n{i}" for i in range(8)]
    await _ensure(stack, app_key, users)
    placed = await _placed(stack, users)
    user = next(u for u in users if placed[u] == "hub-1")  # the lighter Hub
    hub = stack.hubs[0]
    async with subscribe_events(stack.broker.amqp_url, ["notebook.saved"]) as events:
        [opened] = await run_commands(
            stack, app_key, [{"type": "open", "user": user, "path": NOTEBOOK_PATH}], within=120
        )
        assert opened["status"] == "succeeded", opened
        assert opened["result"]["launch_url"].startswith(hub.url + "/"), opened["result"]
        # a save made in Jupyter on that Hub: its hub service names the Hub
        assert await put_notebook(http, stack, user, NOTEBOOK_PATH, "edited on hub-1") < 300
        async with asyncio.timeout(60):
            saved = await events.first(
                lambda e: e.data.get("user") == user and e.data.get("origin") == "jupyter"
            )
    assert saved.data["hub"] == "hub-1"


def _hubs_listed(stack: LocalStack) -> dict[str, dict[str, object]]:
    rows = json.loads(stack.orchestrator_cli("hubs", "--json", "list"))
    return {str(row["hub"]): row for row in rows}


async def _until_health(stack: LocalStack, hub: str, health: str) -> dict[str, object]:
    """Poll ``orchestrator hubs list`` until ``hub`` shows ``health`` (the checks run
    every second here; the CLI reads the database, which offers no change event)."""
    async with asyncio.timeout(60):
        while True:
            row = (await asyncio.to_thread(_hubs_listed, stack))[hub]
            if row["health"] == health:
                return row
            await asyncio.sleep(0.5)


async def test_a_stopped_hubs_users_wait_for_it_while_new_users_go_elsewhere(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    users = [f"d{uuid.uuid4().hex[:6]}n{i}" for i in range(12)]
    await _ensure(stack, app_key, users)
    placed = await _placed(stack, users)
    waiting_user = next(u for u in users if placed[u] == "hub-2")
    hub = stack.hubs[1]
    await asyncio.to_thread(hub.stop_keeping_servers)
    try:
        down = await _until_health(stack, "hub-2", "down")
        assert down["error"], down
        headers = {"Authorization": f"Bearer {app_key}"}
        body = {"type": "ensure-user", "user": waiting_user}
        async with http.post(f"{stack.gateway_url}/v1/commands", json=body, headers=headers) as r:
            assert r.status == 202, await r.text()
            waiting = await r.json()
        newcomers = [f"e{uuid.uuid4().hex[:6]}n{i}" for i in range(16)]
        await _ensure(stack, app_key, newcomers)  # all placed on the Hub that answers
        assert set((await _placed(stack, newcomers)).values()) == {"hub-1"}
        url = f"{stack.gateway_url}/v1/commands/{waiting['id']}"
        async with http.get(url, headers=headers) as r:
            view = await r.json()
        assert view["status"] not in ("succeeded", "failed"), view
        assert "waiting for Hub hub-2" in (view.get("progress") or {}).get("message", ""), view
    finally:
        await asyncio.to_thread(hub.start_again)
    await _until_health(stack, "hub-2", "up")
    for _ in range(3):  # long polls of at most 30 s (the gateway's limit)
        async with http.get(f"{url}?wait=30", headers=headers) as r:
            assert r.status == 200, await r.text()
            view = await r.json()
        if view["status"] in ("succeeded", "failed"):
            break
    assert view["status"] == "succeeded", view
    assert await _on_hub(http, stack, 1, waiting_user)


async def test_a_drained_hub_takes_no_new_users_until_undrained(
    stack: LocalStack, app_key: str
) -> None:
    await asyncio.to_thread(stack.orchestrator_cli, "hubs", "drain", "hub-2")
    try:
        assert (await asyncio.to_thread(_hubs_listed, stack))["hub-2"]["new_users"] == "draining"
        newcomers = [f"g{uuid.uuid4().hex[:6]}n{i}" for i in range(16)]
        await _ensure(stack, app_key, newcomers)
        assert set((await _placed(stack, newcomers)).values()) == {"hub-1"}
    finally:
        await asyncio.to_thread(stack.orchestrator_cli, "hubs", "undrain", "hub-2")
    later = [f"h{uuid.uuid4().hex[:6]}n{i}" for i in range(16)]
    await _ensure(stack, app_key, later)
    assert "hub-2" in set((await _placed(stack, later)).values())  # 3 of 4 expected there
    with pytest.raises(StartupError, match="no Hub named 'nowhere'"):
        await asyncio.to_thread(stack.orchestrator_cli, "hubs", "drain", "nowhere")
