"""Several JupyterHubs behind one command API: two real Hubs (weights 1 and 3), each with
its own proxy, database and hub service, sharing the broker and the database.

New users are placed by weighted rendezvous hashing and exist on their Hub only; the
placement is stored and survives consumers restarted with other weights; a user's
server, launch link and save events are on (and name) the user's Hub.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import jsonschema
import pytest
from sqlmodel import col, select

from devstack.process import StartupError
from devstack.reliability.load import RELIABILITY_APP
from devstack.reliability.notebooks import (
    NOTEBOOK_PATH,
    notebook_content,
    put_notebook,
    run_commands,
)
from devstack.stack import LocalStack, StackOptions
from orchestrator.operator.subscribe import subscribe_events
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import HubMove, WorkspaceRecord
from schemas.export import event_schema_name, load_schema
from schemas.workspaces import workspace_name

WEIGHTS = [1.0, 3.0]
USERS = 160
# users enough that each Hub gets some at weights 1:3 either way (all on one: < 1e-4)
SOME_ON_EACH = 40

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


async def _final_view(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], *, polls: int
) -> dict[str, Any]:
    """The command's view at ``url`` once final, in at most ``polls`` long polls of 30 s
    (the gateway's limit); the last view seen otherwise."""
    for _ in range(polls):
        async with http.get(f"{url}?wait=30", headers=headers) as r:
            assert r.status == 200, await r.text()
            view: dict[str, Any] = await r.json()
        if view["status"] in ("succeeded", "failed"):
            break
    return view


async def test_a_stopped_hubs_users_wait_for_it_while_new_users_go_elsewhere(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    users = [f"d{uuid.uuid4().hex[:6]}n{i}" for i in range(SOME_ON_EACH)]
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
    view = await _final_view(http, url, headers, polls=3)
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


MOVED_PATHS = ["a.ipynb", "b.ipynb", "sub/c.ipynb"]


async def _user_with_three_notebooks(
    stack: LocalStack, key: str, http: aiohttp.ClientSession, hub: str
) -> tuple[str, dict[str, str]]:
    """A user on ``hub`` with 3 notebooks: ``a`` edited and saved inside Jupyter, ``b`` as
    created, ``sub/c`` edited on disk by the user's own code (no save the orchestrator
    heard of). Returns the user and each notebook's expected text."""
    users = [f"m{uuid.uuid4().hex[:6]}n{i}" for i in range(SOME_ON_EACH)]
    await _ensure(stack, key, users)
    placed = await _placed(stack, users)
    user = next(u for u in users if placed[u] == hub)
    opened = await run_commands(
        stack, key, [{"type": "open", "user": user, "path": p} for p in MOVED_PATHS], within=120
    )
    assert {v["status"] for v in opened} == {"succeeded"}, opened
    index = 0 if hub == "hub-1" else 1
    url = stack.hubs[index].url
    async with subscribe_events(stack.broker.amqp_url, ["notebook.saved"]) as events:
        assert await put_notebook(http, stack, user, "a.ipynb", "saved a", hub_url=url) < 300
        async with asyncio.timeout(60):
            # reported after the opens' own writes, which are then handled too (in order)
            await events.first(
                lambda e: (
                    e.data.get("user") == user
                    and e.data.get("path") == "a.ipynb"
                    and e.data.get("origin") == "jupyter"
                )
            )
    on_disk = stack.workspace_home(workspace_name(RELIABILITY_APP, user), hub) / "sub/c.ipynb"
    on_disk.write_text(json.dumps(notebook_content("unsaved c")))
    return user, {"a.ipynb": "saved a", "b.ipynb": "", "sub/c.ipynb": "unsaved c"}


def _marker(notebook: dict[str, Any]) -> str:
    """The text of the notebook's cells (a source on disk is a list of lines)."""
    sources = [cell["source"] for cell in notebook.get("cells") or []]
    return "".join(s if isinstance(s, str) else "".join(s) for s in sources)


async def _assert_moved(
    stack: LocalStack,
    key: str,
    http: aiohttp.ClientSession,
    user: str,
    expected: dict[str, str],
    target: str,
) -> None:
    """Every notebook on ``target``'s disk and in its latest version says what it should;
    the user lives on ``target`` only, where an ``open`` now leads."""
    assert (await _placed(stack, [user]))[user] == target
    ws = workspace_name(RELIABILITY_APP, user)
    home = stack.workspace_home(ws, target)
    for path, text in expected.items():
        assert _marker(json.loads((home / path).read_text())) == text, path
    headers = {"Authorization": f"Bearer {key}"}
    async with http.get(f"{stack.gateway_url}/v1/users/{user}/notebooks", headers=headers) as r:
        listed = {n["path"]: n for n in (await r.json())["notebooks"]}
    assert set(listed) == set(expected), listed
    for path, text in expected.items():
        version = listed[path]["latest_version_id"]
        async with http.get(f"{stack.gateway_url}/v1/versions/{version}", headers=headers) as r:
            assert r.status == 200, await r.text()
            assert _marker((await r.json())["content"]) == text, path
    source = 1 if target == "hub-1" else 0
    target_index = 1 - source
    state = await _hub_user(http, stack, source, ws)
    assert not state.get("servers"), state  # the old Hub's server was stopped
    [opened] = await run_commands(
        stack, key, [{"type": "open", "user": user, "path": "a.ipynb"}], within=120
    )
    assert opened["status"] == "succeeded", opened
    assert opened["result"]["launch_url"].startswith(stack.hubs[target_index].url + "/")
    assert opened["result"]["restored_version_id"] is None  # the file was there already


async def _hub_user(
    http: aiohttp.ClientSession, stack: LocalStack, index: int, ws: str
) -> dict[str, object]:
    headers = {"Authorization": f"token {stack.service_token}"}
    async with http.get(f"{stack.hubs[index].api_url}/users/{quote(ws)}", headers=headers) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, object] = await r.json()
        return answer


async def test_a_moved_user_has_every_notebook_on_the_new_hub_and_nothing_is_lost(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    user, expected = await _user_with_three_notebooks(stack, app_key, http, "hub-1")
    ws = workspace_name(RELIABILITY_APP, user)
    async with subscribe_events(stack.broker.amqp_url, ["user.moved", "notebook.saved"]) as events:
        out = await asyncio.to_thread(
            stack.orchestrator_cli, "hubs", "--json", "move", ws, "--to", "hub-2", "--wait", "50"
        )
        [row] = json.loads(out)
        assert (row["status"], row["from"], row["to"], row["step"]) == (
            "succeeded",
            "hub-1",
            "hub-2",
            "done",
        ), row
        seen = []  # the user's events up to user.moved (the move's saves come before it)
        async with asyncio.timeout(30):
            async for event in events:
                if event.data.get("user") == user:
                    seen.append(event.data)
                    if "to_hub" in event.data:
                        envelope = event.event
                        break
    schema = load_schema(event_schema_name(envelope["type"]))
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(envelope)
    moved = seen[-1]
    assert (moved["from_hub"], moved["to_hub"]) == ("hub-1", "hub-2")
    assert moved["notebooks"] == MOVED_PATHS
    [kept] = [e for e in seen if e.get("path") == "sub/c.ipynb"]
    assert (kept["origin"], kept["hub"]) == ("command", "hub-1")
    assert kept["command_id"] == row["command_id"]
    await _assert_moved(stack, app_key, http, user, expected, "hub-2")


async def _move_step(stack: LocalStack, command_id: str) -> str | None:
    engine = make_engine(stack.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            move = await session.get(HubMove, uuid.UUID(command_id))
            return None if move is None else move.step
    finally:
        await engine.dispose()


async def test_a_consumer_killed_in_the_middle_of_a_move_finishes_it_after_restart(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    user, expected = await _user_with_three_notebooks(stack, app_key, http, "hub-2")
    ws = workspace_name(RELIABILITY_APP, user)
    out = await asyncio.to_thread(
        stack.orchestrator_cli, "hubs", "--json", "move", ws, "--to", "hub-1"
    )
    [row] = json.loads(out)
    # Killed once the old Hub is left and while the new Hub spawns the user's server: the
    # step is durable, the command unfinished (the database offers no change event).
    async with asyncio.timeout(120):
        while True:
            if await _move_step(stack, row["command_id"]) == "left_source":
                break
            await asyncio.sleep(0.05)
    for consumer in stack.consumers:
        os.kill(consumer.pid, signal.SIGKILL)  # processes this stack started, by PID
    for consumer in stack.consumers:
        await asyncio.to_thread(consumer.wait_exit, 30)
    assert await _move_step(stack, row["command_id"]) in ("left_source", "written")
    assert (await _placed(stack, [user]))[user] == "hub-2"  # not switched yet
    for index in range(len(stack.consumers)):
        await asyncio.to_thread(stack.start_consumer, index)
    headers = {"Authorization": f"Bearer {app_key}"}
    url = f"{stack.gateway_url}/v1/commands/{row['command_id']}"
    view = await _final_view(http, url, headers, polls=6)
    assert view["status"] == "succeeded", view
    # c's edit stored before the move left; b unchanged (a: by Jupyter's save report, or
    # by the move if the report came later)
    assert "sub/c.ipynb" in view["result"]["stored"], view["result"]
    assert "b.ipynb" not in view["result"]["stored"], view["result"]
    assert await _move_step(stack, row["command_id"]) == "done"
    await _assert_moved(stack, app_key, http, user, expected, "hub-1")


def test_the_gateway_holds_no_hub_token(stack: LocalStack) -> None:
    assert stack.gateway is not None
    environ = Path(f"/proc/{stack.gateway.pid}/environ").read_bytes()
    assert b"ORCH_HUBS=" in environ  # it knows the Hubs (names, public URLs)...
    assert stack.service_token.encode() not in environ  # ...but holds no token of theirs
