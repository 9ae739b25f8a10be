"""``orchestrator hubs move`` and ``hubs drain --move``: moving workspaces between Hubs.

Each move is a ``move-user`` command, recorded and published like an app's command
(:func:`runtime.internal_commands.submit_internal`), so it runs in order with the
user's other commands and survives crashes (:mod:`consumers.moves`). With ``--wait``
the CLI follows the commands in the database until each has finished.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.bus.connection import connect
from runtime.bus.publisher import ConfirmedPublisher
from runtime.db.commands import CommandStore
from runtime.db.hub_status import HubStatusStore
from runtime.db.models import CommandRecord, CommandStatus, HubMove, WorkspaceRecord
from runtime.hubs import HubSpec, place
from runtime.internal_commands import submit_internal
from runtime.settings import HubsSettings
from schemas.commands import CommandType, MoveUser
from schemas.workspaces import workspace_name

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class PlannedMove:
    """One workspace to move, and where."""

    workspace: WorkspaceRecord
    source: str
    target: str


async def find_workspace(
    sessions: async_sessionmaker[AsyncSession], user: str, app: str | None
) -> WorkspaceRecord | None:
    """The workspace named ``user`` (a Hub user name), or ``user``'s in ``app``."""
    name = user if app is None else workspace_name(app, user)
    async with sessions() as session:
        return await session.get(WorkspaceRecord, name)


async def plan_drain(
    sessions: async_sessionmaker[AsyncSession],
    specs: list[HubSpec],
    hub: str,
    to: str | None,
) -> list[PlannedMove]:
    """A move for every workspace on ``hub`` that has no move under way: to ``to``, or
    each placed over the Hubs taking new users (``hub`` itself, draining, is not)."""
    on_this_hub = col(WorkspaceRecord.hub) == hub
    if hub == specs[0].name:  # recorded before there were several Hubs: on the first
        on_this_hub = or_(on_this_hub, col(WorkspaceRecord.hub).is_(None))
    async with sessions() as session:
        on_hub = (await session.exec(select(WorkspaceRecord).where(on_this_hub))).all()
        pending = await session.exec(
            select(CommandRecord.app, CommandRecord.user).where(
                col(CommandRecord.type) == CommandType.MOVE_USER.value,
                col(CommandRecord.status).in_(
                    [CommandStatus.ACCEPTED.value, CommandStatus.RUNNING.value]
                ),
            )
        )
        moving = {workspace_name(app, user) for app, user in pending.all()}
    open_hubs = [s for s in await HubStatusStore(sessions).taking_new_users(specs) if s.name != hub]
    if to is None and not open_hubs:
        raise LookupError("no other Hub takes new users: name one with --to")
    return [
        PlannedMove(record, hub, to or place(record.name, open_hubs).name)
        for record in on_hub
        if record.name not in moving
    ]


async def submit_moves(
    settings: HubsSettings, sessions: async_sessionmaker[AsyncSession], moves: list[PlannedMove]
) -> list[uuid.UUID]:
    """Record and publish a ``move-user`` per planned move; their command ids."""
    connection = await connect(settings.amqp_url.get_secret_value(), name="hubs-move")
    publisher = ConfirmedPublisher(connection, timeout=settings.publish_timeout_seconds)
    commands = CommandStore(sessions)
    ids = []
    try:
        for move in moves:
            accepted = await submit_internal(
                commands,
                publisher,
                app=move.workspace.app,
                command=MoveUser(user=move.workspace.user, to_hub=move.target),
                idempotency_key=f"move:{move.workspace.name}:{move.target}:{uuid.uuid4()}",
                correlation_prefix="move",
            )
            ids.append(accepted.record.id)
    finally:
        await publisher.close()
        await connection.close()
    return ids


async def move_rows(
    sessions: async_sessionmaker[AsyncSession],
    moves: list[PlannedMove],
    ids: list[uuid.UUID],
    *,
    wait_seconds: float | None,
) -> list[dict[str, Any]]:
    """One row per move: its command's status (once all finished, with ``wait_seconds``)
    and the step it reached."""
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    while True:
        async with sessions() as session:
            records = {
                r.id: r
                for r in (
                    await session.exec(select(CommandRecord).where(col(CommandRecord.id).in_(ids)))
                ).all()
            }
            steps = {
                m.command_id: m.step
                for m in (
                    await session.exec(select(HubMove).where(col(HubMove.command_id).in_(ids)))
                ).all()
            }
        finished = all(CommandStatus(r.status).is_final for r in records.values())
        if deadline is None or finished or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    rows = []
    for move, command_id in zip(moves, ids, strict=True):
        record = records.get(command_id)
        result = (record.result if record else None) or {}
        rows.append(
            {
                "workspace": move.workspace.name,
                "app": move.workspace.app,
                "user": move.workspace.user,
                "from": move.source,
                "to": move.target,
                "command_id": str(command_id),
                "status": record.status if record else "unknown",
                "step": steps.get(command_id, "queued"),
                "stored": len(result.get("stored", [])),
                "notebooks": len(result.get("notebooks", [])),
                "error": (record.error or {}).get("message") if record else None,
            }
        )
    return rows


def complain(text: str) -> int:
    """Say ``text`` on stderr; the exit status of a refused action."""
    print(text, file=sys.stderr)
    return 1
