"""Moves of workspaces between Hubs (``hub_move``): the step each move reached, and the
switch of the workspace's Hub, made in the same transaction as the move's last step."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import HubMove, WorkspaceRecord
from schemas.commands import utcnow
from schemas.workspaces import MoveStep


class MoveStore:
    """Records each move's progress; one row per ``move-user`` command."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def begin(
        self, command_id: uuid.UUID, workspace: str, source: str, target: str
    ) -> HubMove:
        """The move of ``command_id``: as a crash left it, or new at step ``started``."""
        async with self._sessions() as session:
            found = await session.get(HubMove, command_id)
            if found is not None:
                return found
            move = HubMove(command_id=command_id, workspace=workspace, source=source, target=target)
            session.add(move)
            try:
                await session.commit()
            except IntegrityError:  # the same command, redelivered to another consumer
                await session.rollback()
                found = await session.get(HubMove, command_id)
                if found is None:
                    raise
                return found
            await session.refresh(move)
            return move

    async def advance(
        self, command_id: uuid.UUID, step: MoveStep, *, stored: list[str] | None = None
    ) -> None:
        """Record that the move reached ``step`` (and the notebooks it stored)."""
        values: dict[str, object] = {"step": step.value, "updated_at": utcnow()}
        if stored is not None:
            values["stored"] = stored
        async with self._sessions() as session:
            await session.exec(
                update(HubMove).where(col(HubMove.command_id) == command_id).values(**values)
            )
            await session.commit()

    async def switch(self, command_id: uuid.UUID) -> None:
        """The last step: the workspace lives on the move's target from now on, and the
        move is ``done`` (one transaction)."""
        async with self._sessions() as session:
            move = await session.get(HubMove, command_id)
            if move is None:
                raise LookupError(f"no move of command {command_id}")
            await session.exec(
                update(WorkspaceRecord)
                .where(col(WorkspaceRecord.name) == move.workspace)
                .values(hub=move.target)
            )
            move.step = MoveStep.DONE.value
            move.updated_at = utcnow()
            session.add(move)
            await session.commit()

    async def unfinished(self) -> list[HubMove]:
        """Moves not done yet, oldest first."""
        async with self._sessions() as session:
            rows = await session.exec(
                select(HubMove)
                .where(col(HubMove.step) != MoveStep.DONE.value)
                .order_by(col(HubMove.started_at))
            )
            return list(rows.all())
