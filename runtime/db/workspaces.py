"""The workspace registry: which app and person each workspace's Hub user belongs to."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import WorkspaceRecord
from schemas.workspaces import Workspace, workspace_name


class WorkspaceStore:
    """Records workspaces as they are first used and answers whose one is."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ensure(self, app: str, user: str) -> Workspace:
        """The workspace of ``user`` in ``app``, recorded if new (idempotent, race-safe)."""
        workspace = Workspace(workspace_name(app, user), app, user)
        async with self._sessions() as session:
            if await session.get(WorkspaceRecord, workspace.name) is not None:
                return workspace
            session.add(WorkspaceRecord(name=workspace.name, app=app, user=user))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()  # another process recorded it first
        return workspace

    async def owner(self, name: str) -> Workspace | None:
        """The app and person of the workspace whose Hub user is ``name``, if recorded."""
        async with self._sessions() as session:
            record = await session.get(WorkspaceRecord, name)
            return None if record is None else Workspace(record.name, record.app, record.user)
