"""Async engine and session factory for SQLite (WAL) or PostgreSQL, by URL; schema
migrations at start-up, serialised between processes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime import jsonbytes
from runtime.db import models  # noqa: F401  (registers the tables)
from runtime.db.migrations import upgrade_connection

# Key of the PostgreSQL advisory lock held while migrating ("orch" in ASCII).
MIGRATION_LOCK_KEY = 0x6F726368


# How long a SQLite writer waits for another process's write lock before failing.
SQLITE_TIMEOUT_SECONDS = 30


def apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL, a busy timeout, NORMAL sync and foreign keys on a new SQLite connection."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The database file of a SQLite engine; None for other backends and in-memory ones."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def make_engine(url: str) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL and a busy timeout for many processes.

    PostgreSQL URLs use asyncpg (``postgresql+asyncpg://user:password@host:port/db``).
    """
    # JSON columns (a command's payload, result, error) written by orjson: the payload
    # is serialised on every accepted command's path.
    json_serializer = jsonbytes.dumps_text
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_TIMEOUT_SECONDS}, json_serializer=json_serializer
        )
        event.listen(engine.sync_engine, "connect", apply_sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=json_serializer
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory; objects stay usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def create_schema(engine: AsyncEngine) -> None:
    """Migrate the database to the newest schema revision (Alembic), on any backend.

    Every process calls this at start-up, so it must be safe when several start at
    once: on PostgreSQL the migration runs in one transaction holding an advisory
    lock; on SQLite under an exclusive lock on a file beside the database. Whoever
    comes second finds the schema at head and does nothing.
    """
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            await conn.run_sync(upgrade_connection)
        return
    async with _sqlite_file_lock(engine), engine.begin() as conn:
        await conn.run_sync(upgrade_connection)


@contextlib.asynccontextmanager
async def _sqlite_file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on ``<database file>.migrate-lock`` (no-op in memory)."""
    database = sqlite_file(engine)
    if database is None:
        yield
        return
    descriptor = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # flock blocks: wait in a thread so the event loop keeps running.
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
