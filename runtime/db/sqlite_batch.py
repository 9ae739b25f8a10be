"""Batched INSERTs into a SQLite file, one call on a thread of its own per batch."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.db.engine import SQLITE_TIMEOUT_SECONDS, apply_sqlite_pragmas


class SqliteBatchInserter:
    """Inserts rows into one table of a SQLite file: a batch is one call on one thread.

    Through aiosqlite every DB-API step of a batch (begin, executemany, commit, reset)
    is its own hop to aiosqlite's thread and back through the event loop, and under load
    each hop waits for a full turn of a busy loop. Here the values are converted on the
    loop by the columns' own SQLAlchemy bind processors (so rows are stored exactly as
    the engine stores them and read back by it), and the batch is one multi-row
    ``INSERT … VALUES (…), (…)`` statement in autocommit (a statement is its own
    transaction: all rows or none) run on a dedicated thread. One statement, not
    ``executemany``: the thread gives up the GIL for each statement it steps and must win
    it back from the busy event loop afterwards, which took up to the interpreter's
    5 ms switch interval per row under load (a 25-row batch measured 23 ms).
    The connection is opened on that thread with the engine's pragmas.
    """

    def __init__(
        self, engine: AsyncEngine, table: Table, path: str, *, max_rows_per_statement: int = 500
    ) -> None:
        compiled = table.insert().compile(dialect=engine.dialect)
        head, values_keyword, row = str(compiled).partition(" VALUES ")
        if not values_keyword:
            raise ValueError(f"unexpected INSERT form: {compiled}")
        self._head, self._row = f"{head} VALUES ", row  # "(?, ?, …)"
        self._sql: dict[int, str] = {}  # by number of rows; used on the executor's thread
        # Larger batches are several statements in one transaction; the thread lowers
        # this to what SQLite's limit on bound variables allows.
        self._rows_per_statement = max_rows_per_statement
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
            row[name] if convert is None else convert(row[name])
            for row in rows
            for name, convert in self._converters
        ]
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self._write, len(rows), values
        )

    def _write(self, rows: int, values: list[Any]) -> None:
        connection = self._connection
        if connection is None:
            connection = sqlite3.connect(
                self._path,
                timeout=SQLITE_TIMEOUT_SECONDS,
                isolation_level=None,  # autocommit; transactions are explicit below
                check_same_thread=False,  # only this thread uses it; closed from anywhere
            )
            apply_sqlite_pragmas(connection, None)
            variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._rows_per_statement = max(
                1, min(self._rows_per_statement, variables // len(self._converters))
            )
            self._connection = connection
        per_statement = self._rows_per_statement
        if rows <= per_statement:  # the common case: the statement is the transaction
            connection.execute(self._statement(rows), values)
            return
        width = per_statement * len(self._converters)
        connection.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(values), width):
                chunk = values[start : start + width]
                connection.execute(self._statement(len(chunk) // len(self._converters)), chunk)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # SQLite ends it itself after some errors
                connection.execute("ROLLBACK")
            raise

    def _statement(self, rows: int) -> str:
        """``INSERT … VALUES (?, …), (?, …)`` for ``rows`` rows (kept per row count)."""
        sql = self._sql.get(rows)
        if sql is None:
            sql = self._sql[rows] = self._head + ", ".join([self._row] * rows)
        return sql

    async def close(self) -> None:
        """Close the connection and stop the thread (waits for a batch in progress)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
