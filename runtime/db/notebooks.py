"""Notebooks and their versions: store a version unless identical, list, fetch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import Notebook, NotebookBlob, NotebookVersion
from schemas.commands import utcnow
from schemas.versions import NotebookSummary, StoredVersion


def _stored(version: NotebookVersion, nb: Notebook, *, created: bool) -> StoredVersion:
    return StoredVersion(
        id=version.id,
        user=nb.user,
        path=nb.path,
        sha256=version.sha256,
        size=version.size,
        origin=version.origin,
        created_at=version.created_at,
        created=created,
        command_id=version.command_id,
        app=version.app,
        restored_from=version.restored_from,
        before_overwrite=version.before_overwrite,
    )


@dataclass(frozen=True)
class _Provenance:
    origin: str
    command_id: uuid.UUID | None
    app: str | None
    restored_from: uuid.UUID | None
    before_overwrite: bool


class NotebookStore:
    """Persistence of notebooks, versions and content blobs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_version(
        self,
        *,
        user: str,
        path: str,
        content: str,
        sha256: str,
        origin: str,
        command_id: uuid.UUID | None = None,
        app: str | None = None,
        restored_from: uuid.UUID | None = None,
        before_overwrite: bool = False,
    ) -> StoredVersion:
        """Store ``content`` as the new latest version unless it equals the latest.

        Idempotent per ``command_id``: a redelivered command returns the version it
        made. ``created`` tells whether a new version row was written. The other
        arguments say who wrote it (:class:`~schemas.versions.StoredVersion`).
        """
        provenance = _Provenance(origin, command_id, app, restored_from, before_overwrite)
        for _ in range(3):
            try:
                return await self._add_version(user, path, content, sha256, provenance)
            except IntegrityError:
                continue  # a concurrent writer created the notebook or blob: read again
        return await self._add_version(user, path, content, sha256, provenance)

    async def _add_version(
        self,
        user: str,
        path: str,
        content: str,
        sha256: str,
        provenance: _Provenance,
    ) -> StoredVersion:
        command_id = provenance.command_id
        async with self._sessions() as session:
            nb = await self._notebook(session, user, path)
            if nb is None:
                nb = Notebook(user=user, path=path)
                session.add(nb)
                await session.flush()
            if command_id is not None:
                done = (
                    await session.exec(
                        select(NotebookVersion).where(
                            NotebookVersion.command_id == command_id,
                            NotebookVersion.notebook_id == nb.id,
                        )
                    )
                ).first()
                if done is not None:
                    return _stored(done, nb, created=False)
            if nb.latest_version_id is not None:
                latest = await session.get(NotebookVersion, nb.latest_version_id)
                if latest is not None and latest.sha256 == sha256:
                    if nb.deleted:
                        nb.deleted = False
                        session.add(nb)
                        await session.commit()
                    return _stored(latest, nb, created=False)
            size = len(content.encode())
            if await session.get(NotebookBlob, sha256) is None:
                session.add(NotebookBlob(sha256=sha256, size=size, content=content))
            version = NotebookVersion(
                notebook_id=nb.id,
                sha256=sha256,
                size=size,
                origin=provenance.origin,
                command_id=command_id,
                app=provenance.app,
                restored_from=provenance.restored_from,
                before_overwrite=provenance.before_overwrite,
            )
            session.add(version)
            await session.flush()
            nb.latest_version_id = version.id
            nb.deleted = False
            nb.updated_at = utcnow()
            session.add(nb)
            await session.commit()
            return _stored(version, nb, created=True)

    @staticmethod
    async def _notebook(session: AsyncSession, user: str, path: str) -> Notebook | None:
        stmt = select(Notebook).where(Notebook.user == user, Notebook.path == path)
        return (await session.exec(stmt)).first()

    async def latest(self, user: str, path: str) -> StoredVersion | None:
        """The latest version of ``user``'s notebook at ``path``, if any."""
        async with self._sessions() as session:
            nb = await self._notebook(session, user, path)
            if nb is None or nb.latest_version_id is None:
                return None
            version = await session.get(NotebookVersion, nb.latest_version_id)
            return None if version is None else _stored(version, nb, created=False)

    async def version(self, version_id: uuid.UUID) -> StoredVersion | None:
        """A version by id."""
        async with self._sessions() as session:
            version = await session.get(NotebookVersion, version_id)
            if version is None:
                return None
            nb = await session.get(Notebook, version.notebook_id)
            return None if nb is None else _stored(version, nb, created=False)

    async def of_command(self, command_id: uuid.UUID) -> StoredVersion | None:
        """The version ``command_id`` stored, if it stored one."""
        async with self._sessions() as session:
            stmt = select(NotebookVersion).where(NotebookVersion.command_id == command_id)
            version = (await session.exec(stmt)).first()
            if version is None:
                return None
            nb = await session.get(Notebook, version.notebook_id)
            return None if nb is None else _stored(version, nb, created=False)

    async def previous(self, version_id: uuid.UUID) -> StoredVersion | None:
        """The version of the same notebook stored just before ``version_id`` (None for
        a notebook's first version, or an unknown one)."""
        async with self._sessions() as session:
            version = await session.get(NotebookVersion, version_id)
            if version is None:
                return None
            earlier = (
                await session.exec(
                    select(NotebookVersion)
                    .where(
                        col(NotebookVersion.notebook_id) == version.notebook_id,
                        col(NotebookVersion.created_at) < version.created_at,
                    )
                    .order_by(col(NotebookVersion.created_at).desc())
                    .limit(1)
                )
            ).first()
            nb = await session.get(Notebook, version.notebook_id)
            return None if earlier is None or nb is None else _stored(earlier, nb, created=False)

    async def previous_content(self, version_id: uuid.UUID) -> str | None:
        """The content of :meth:`previous`, in one query (it runs on every save)."""
        later, earlier = aliased(NotebookVersion), aliased(NotebookVersion)
        async with self._sessions() as session:
            found = await session.exec(
                select(NotebookBlob.content)
                .join(earlier, col(earlier.sha256) == col(NotebookBlob.sha256))
                .join(
                    later,
                    (col(later.notebook_id) == col(earlier.notebook_id))
                    & (col(earlier.created_at) < col(later.created_at)),
                )
                .where(col(later.id) == version_id)
                .order_by(col(earlier.created_at).desc())
                .limit(1)
            )
            return found.first()

    async def stored_by(self, command_id: uuid.UUID) -> list[StoredVersion]:
        """Every version ``command_id`` stored (a move stores one per notebook), by path."""
        async with self._sessions() as session:
            rows = await session.exec(
                select(NotebookVersion, Notebook)
                .join(Notebook, col(Notebook.id) == col(NotebookVersion.notebook_id))
                .where(NotebookVersion.command_id == command_id)
                .order_by(col(Notebook.path))
            )
            return [_stored(version, nb, created=False) for version, nb in rows.all()]

    async def content(self, sha256: str) -> str | None:
        """The stored content (nbformat JSON text) with this hash."""
        async with self._sessions() as session:
            blob = await session.get(NotebookBlob, sha256)
            return None if blob is None else blob.content

    async def notebooks(self, user: str) -> list[NotebookSummary]:
        """All notebooks of ``user``, most recently updated first."""
        async with self._sessions() as session:
            stmt = (
                select(Notebook)
                .where(Notebook.user == user)
                .order_by(col(Notebook.updated_at).desc())
            )
            rows = (await session.exec(stmt)).all()
            return [
                NotebookSummary(r.user, r.path, r.latest_version_id, r.updated_at, r.deleted)
                for r in rows
            ]

    async def versions(self, user: str, path: str) -> list[StoredVersion]:
        """Versions of one notebook, newest first."""
        async with self._sessions() as session:
            nb = await self._notebook(session, user, path)
            if nb is None:
                return []
            stmt = (
                select(NotebookVersion)
                .where(NotebookVersion.notebook_id == nb.id)
                .order_by(col(NotebookVersion.created_at).desc())
            )
            return [_stored(v, nb, created=False) for v in (await session.exec(stmt)).all()]

    async def rename(self, user: str, old_path: str, new_path: str) -> bool:
        """Follow a rename made inside Jupyter; versions move with the notebook."""
        async with self._sessions() as session:
            nb = await self._notebook(session, user, old_path)
            if nb is None or await self._notebook(session, user, new_path) is not None:
                return False
            nb.path = new_path
            nb.updated_at = utcnow()
            session.add(nb)
            await session.commit()
            return True

    async def mark_deleted(self, user: str, path: str) -> bool:
        """Follow a delete made inside Jupyter; versions are kept."""
        async with self._sessions() as session:
            nb = await self._notebook(session, user, path)
            if nb is None:
                return False
            nb.deleted = True
            nb.updated_at = utcnow()
            session.add(nb)
            await session.commit()
            return True
