"""The records behind moves between Hubs, on SQLite and on a real PostgreSQL: a move's
steps survive a restart (begin finds the move where it was), the switch moves the
workspace in the same transaction, and a drain plans one move per workspace on the
drained Hub (those recorded before there were several Hubs included) that has none
under way, to the Hubs still taking new users."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.operator.hub_moves import plan_drain
from runtime.db.command_records import NewCommand
from runtime.db.commands import CommandStore
from runtime.db.hub_status import HubStatusStore
from runtime.db.models import CommandStatus, WorkspaceRecord
from runtime.db.moves import MoveStore
from runtime.hubs import HubSpec
from schemas.commands import MoveUser
from schemas.workspaces import MoveStep, workspace_name

pytest_plugins = ["tests.integration.database_fixtures"]

SPECS = [
    HubSpec(name=name, public_url=f"http://{name}.test", token=SecretStr("t"))
    for name in ("hub-1", "hub-2", "hub-3")
]


async def _workspaces(
    sessions: async_sessionmaker[AsyncSession], placed: dict[str, str | None]
) -> None:
    async with sessions() as session:
        for user, hub in placed.items():
            session.add(
                WorkspaceRecord(name=workspace_name("app", user), app="app", user=user, hub=hub)
            )
        await session.commit()


async def test_a_move_resumes_at_its_step_and_switches_the_workspace_with_its_record(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _workspaces(db_sessions, {"ann": "hub-1"})
    ws = workspace_name("app", "ann")
    command = uuid.uuid4()
    moves = MoveStore(db_sessions)
    first = await moves.begin(command, ws, "hub-1", "hub-2")
    assert (first.step, first.stored) == (MoveStep.STARTED, [])
    await moves.advance(command, MoveStep.LEFT_SOURCE, stored=["a.ipynb"])
    # a restarted consumer: the same command finds the move where it was, same source
    again = await MoveStore(db_sessions).begin(command, ws, "hub-2", "hub-2")
    assert (again.source, again.step, again.stored) == ("hub-1", "left_source", ["a.ipynb"])
    assert [m.command_id for m in await moves.unfinished()] == [command]
    await moves.switch(command)
    async with db_sessions() as session:
        record = await session.get(WorkspaceRecord, ws)
    assert record is not None and record.hub == "hub-2"
    assert await moves.unfinished() == []


async def test_a_drain_plans_a_move_for_every_workspace_on_the_hub_without_one_under_way(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    placed: dict[str, str | None] = {f"u{i}": "hub-1" for i in range(60)}
    placed |= {"legacy": None, "elsewhere": "hub-2", "busy": "hub-1"}
    await _workspaces(db_sessions, placed)
    accepted = await CommandStore(db_sessions).record(
        NewCommand(
            app="app",
            type="move-user",
            user="busy",
            payload=MoveUser(user="busy", to_hub="hub-2").model_dump(mode="json"),
            correlation_id="c",
            idempotency_key="k",
        )
    )
    assert accepted.record.status == CommandStatus.ACCEPTED
    await HubStatusStore(db_sessions).set_draining("hub-1", True)

    planned = await plan_drain(db_sessions, SPECS, "hub-1", None)
    users = {move.workspace.user for move in planned}
    # the first Hub's: those placed there and those recorded before several Hubs
    assert users == {f"u{i}" for i in range(60)} | {"legacy"}
    assert {move.source for move in planned} == {"hub-1"}
    targets = Counter(move.target for move in planned)
    assert set(targets) == {"hub-2", "hub-3"}, targets  # placed over the others
    assert min(targets.values()) >= 15, targets

    await HubStatusStore(db_sessions).set_draining("hub-3", True)
    to_one = await plan_drain(db_sessions, SPECS, "hub-1", None)
    assert {move.target for move in to_one} == {"hub-2"}
    named = await plan_drain(db_sessions, SPECS, "hub-1", "hub-3")
    assert {move.target for move in named} == {"hub-3"}  # --to wins over draining
    await HubStatusStore(db_sessions).set_draining("hub-2", True)
    with pytest.raises(LookupError, match="--to"):
        await plan_drain(db_sessions, SPECS, "hub-1", None)
