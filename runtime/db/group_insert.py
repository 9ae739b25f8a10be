"""Group commit of INSERTs: the rows of concurrent callers written in one batch."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.db.engine import sqlite_file
from runtime.db.sqlite_batch import SqliteBatchInserter


class GroupInsert:
    """Inserts the rows of concurrent callers into ``table`` together: one transaction
    per batch.

    Each caller waits until its row is committed. Rows queued while a batch commits
    go into the next batch (group commit), so under load a process has one writer
    committing many rows at a time instead of many writers queueing for SQLite's
    write lock (whose busy handler sleeps for milliseconds) or PostgreSQL's WAL flush.
    """

    def __init__(self, engine: AsyncEngine, table: Table, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._table = table
        self._max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._sqlite_file = sqlite_file(engine)
        self._sqlite: SqliteBatchInserter | None = None  # for a SQLite file, on first use

    async def close(self) -> None:
        """Release the SQLite writer thread, if one was started."""
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        if self._sqlite_file is not None:
            if self._sqlite is None:
                self._sqlite = SqliteBatchInserter(self._engine, self._table, self._sqlite_file)
            await self._sqlite.insert(rows)
            return
        # Core, not the ORM: nothing but the INSERT is needed for a batch.
        async with self._engine.begin() as connection:
            await connection.execute(self._table.insert(), rows)

    async def insert(self, row: dict[str, Any]) -> None:
        """Insert ``row``; returns once committed, raises what the batch raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                await self._write([row for row, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
