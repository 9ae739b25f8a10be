"""Alembic environment: migrations of the orchestrator's tables (SQLite and PostgreSQL).

Two ways in:
- programmatic (``runtime.db.migrations.upgrade_connection``, used by
  ``create_schema`` in every process): the caller passes an open connection in
  ``config.attributes["connection"]`` and holds the migration lock;
- the ``alembic`` command (``alembic -c alembic.ini revision --autogenerate -m ...``):
  the URL comes from ``ORCH_DATABASE_URL`` (or ``sqlalchemy.url``).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import DateTime, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from runtime.db import models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render the models' column types as plain SQLAlchemy types in new revisions,
    so migrations never import application code that may change later."""
    if type_ != "type":
        return False
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if isinstance(obj, TypeDecorator) and isinstance(obj.impl, DateTime):
        return f"sa.DateTime(timezone={obj.impl.timezone})"
    return False


def configure(connection: Connection) -> None:
    """Configure the migration context on ``connection`` (batch mode for SQLite's ALTER)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    if context.config.config_file_name is not None:
        fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    url = os.environ.get("ORCH_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set ORCH_DATABASE_URL (or sqlalchemy.url) to the database to migrate")
    asyncio.run(_run_from_url(url))


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run against a database")
_main()
