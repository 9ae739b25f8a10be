"""The cache of notebook diffs (``notebook_diff``), keyed by the two contents' hashes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import NotebookDiff


class DiffCache:
    """Diffs computed once, shared by every gateway."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, before_sha256: str, after_sha256: str) -> dict[str, Any] | None:
        """The diff of these two contents, if computed before."""
        async with self._sessions() as session:
            row = await session.get(NotebookDiff, (before_sha256, after_sha256))
            return None if row is None else dict(row.result)

    async def put(self, before_sha256: str, after_sha256: str, result: dict[str, Any]) -> None:
        """Keep a computed diff (another gateway storing it first is fine)."""
        async with self._sessions() as session:
            session.add(
                NotebookDiff(before_sha256=before_sha256, after_sha256=after_sha256, result=result)
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
