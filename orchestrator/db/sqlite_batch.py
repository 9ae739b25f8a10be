"""Batched INSERTs into a SQLite file, one call on a thread of its own per batch."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.engine import SQLITE_TIMEOUT_SECONDS, apply_sqlite_pragmas


class SqliteBatchInserter:
    """Inserts rows into one table of a SQLite file: a batch is one call on one thread.

    Through aiosqlite every DB-API step of a batch (begin, executemany, commit, reset)
    is its own hop to aiosqlite's thread and back through the event loop, and under load
    each hop waits for a full turn of a busy loop. Here the values are converted on the
    loop by the columns' own SQLAlchemy bind processors (so rows are stored exactly as
    the engine stores them and read back by it), and ``BEGIN IMMEDIATE`` … ``COMMIT``
    runs in one call on a dedicated thread, SQLite working with the GIL released.
    The connection is opened on that thread with the engine's pragmas.
    """

    def __init__(self, engine: AsyncEngine, table: Table, path: str) -> None:
        compiled = table.insert().compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._converters: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, table.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect))
            for name in compiled.positiontup or ()
        ]
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-batch")
        self._connection: sqlite3.Connection | None = None  # used on the executor's thread

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` in one transaction; raises what SQLite raised (nothing kept)."""
        values = [
            tuple(
                row[name] if convert is None else convert(row[name])
                for name, convert in self._converters
            )
            for row in rows
        ]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, values)

    def _write(self, values: list[tuple[Any, ...]]) -> None:
        connection = self._connection
        if connection is None:
            connection = sqlite3.connect(
                self._path,
                timeout=SQLITE_TIMEOUT_SECONDS,
                isolation_level=None,  # transactions are explicit below
                check_same_thread=False,  # only this thread uses it; closed from anywhere
            )
            apply_sqlite_pragmas(connection, None)
            self._connection = connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(self._sql, values)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # SQLite ends it itself after some errors
                connection.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        """Close the connection and stop the thread (waits for a batch in progress)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
