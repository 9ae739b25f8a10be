"""The workspace registry: which app and person each workspace's Hub user belongs to,
and which Hub it lives on."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.hub_status import HubStatusStore
from runtime.db.models import WorkspaceRecord
from runtime.hubs import HubSpec, place
from schemas.workspaces import Workspace, workspace_name


class WorkspaceStore:
    """Records workspaces as they are first used and answers whose one is.

    Given the configured ``hubs``, a new workspace is placed on one of those taking new
    users (:func:`runtime.hubs.place`) in the same insert that records it, and stays
    there: the placement is never computed again. A workspace recorded before there
    were several Hubs lives on the first configured one, and is written so on first use.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], hubs: Sequence[HubSpec] = ()
    ) -> None:
        self._sessions = sessions
        self._hubs = list(hubs)
        self._status = HubStatusStore(sessions)

    async def ensure(self, app: str, user: str) -> Workspace:
        """The workspace of ``user`` in ``app``, recorded (and placed) if new
        (idempotent, race-safe: the first process to record it decides its Hub)."""
        name = workspace_name(app, user)
        async with self._sessions() as session:
            record = await session.get(WorkspaceRecord, name)
        if record is None:
            hub = await self._place(name)
            async with self._sessions() as session:
                session.add(WorkspaceRecord(name=name, app=app, user=user, hub=hub))
                try:
                    await session.commit()
                    return Workspace(name, app, user, hub)
                except IntegrityError:
                    await session.rollback()  # another process recorded it first
                record = await session.get(WorkspaceRecord, name)
            if record is None:
                raise RuntimeError(f"workspace {name} vanished while being recorded")
        return await self._with_hub(record)

    async def owner(self, name: str) -> Workspace | None:
        """The app, person and Hub of the workspace whose Hub user is ``name``, if
        recorded."""
        async with self._sessions() as session:
            record = await session.get(WorkspaceRecord, name)
        return None if record is None else await self._with_hub(record)

    async def _place(self, name: str) -> str | None:
        if not self._hubs:
            return None
        return place(name, await self._status.taking_new_users(self._hubs)).name

    async def _with_hub(self, record: WorkspaceRecord) -> Workspace:
        hub = record.hub
        if hub is None and self._hubs:
            hub = self._hubs[0].name  # recorded when there was one Hub: it is that one
            async with self._sessions() as session:
                await session.exec(
                    update(WorkspaceRecord)
                    .where(col(WorkspaceRecord.name) == record.name)
                    .where(col(WorkspaceRecord.hub).is_(None))
                    .values(hub=hub)
                )
                await session.commit()
        return Workspace(record.name, record.app, record.user, hub)
