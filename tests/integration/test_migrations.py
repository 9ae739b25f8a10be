"""Alembic migrations build exactly the models' schema on SQLite and PostgreSQL, and
many processes migrating one database at once do not race."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from runtime.db.engine import create_schema, make_engine
from runtime.db.migrations import alembic_config, current_revision, head_revision
from runtime.db.migrations.versions import r0004_drop_unused_command_indexes as r0004
from runtime.db.migrations.versions.r0005_workspaces import LEGACY_APP
from schemas.workspaces import workspace_name

pytest_plugins = ["tests.integration.database_fixtures"]
TABLES_AFTER_0001 = {
    "spawn_slot",
    "workspace",
    "outbox_message",
    "spawn_waiter",
    "server",
    "job_lease",
    "hub_status",
    "hub_move",
    "notebook_diff",
}
INDEXES_AFTER_0001 = {"ix_command_user_status_created", "ix_command_unfinished_updated"}
COLUMNS_AFTER_0001 = [
    ("notebook_version", "app"),
    ("notebook_version", "restored_from"),
    ("notebook_version", "before_overwrite"),
    ("command", "progress"),
    ("app", "idle_timeout_seconds"),
    ("app", "max_age_seconds"),
    ("app", "cull_grace_seconds"),
]
# In revision 0001 and dropped by 0004, so not in the models any more.
INDEXES_DROPPED_AFTER_0001 = r0004.DROPPED
TABLES = {"app", "app_key", "command", "notebook", "notebook_blob", "notebook_version"}

# Imports first, then waits for "go" on stdin, so that all processes migrate at once.
_MIGRATING_PROCESS = """
import asyncio, sys
from runtime.db.engine import create_schema, make_engine
from runtime.db.migrations import current_revision

async def main(url):
    engine = make_engine(url)
    await create_schema(engine)
    async with engine.connect() as conn:
        print("migrated", await conn.run_sync(current_revision), flush=True)
    await engine.dispose()

print("ready", flush=True)
sys.stdin.readline()
asyncio.run(main(sys.argv[1]))
"""


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_upgrade_from_empty_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(current_revision) == head_revision()
            assert set(await conn.run_sync(lambda c: inspect(c).get_table_names())) >= TABLES
            assert await conn.run_sync(_schema_diff) == []
            # The comparison is able to see a difference:
            await conn.execute(text("DROP INDEX ix_command_user_status_created"))
            diff = await conn.run_sync(_schema_diff)
            assert [d[0] for d in diff] == ["add_index"]
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)

        def downgrade(conn: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")

        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert not (left & TABLES)
        await create_schema(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


async def test_a_database_made_before_migrations_is_adopted(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        # What create_all made before migrations existed: the tables of revision 0001.
        legacy = [t for t in SQLModel.metadata.sorted_tables if t.name not in TABLES_AFTER_0001]
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all, tables=legacy)
            for index in INDEXES_AFTER_0001:
                await conn.execute(text(f"DROP INDEX {index}"))
            for table, column in COLUMNS_AFTER_0001:
                await conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
            for name, columns in INDEXES_DROPPED_AFTER_0001.items():
                quoted = ", ".join(f'"{column}"' for column in columns)
                await conn.execute(text(f"CREATE INDEX {name} ON command ({quoted})"))
        await create_schema(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(current_revision) == head_revision()
    finally:
        await engine.dispose()


def test_processes_starting_together_migrate_once(db_url: str) -> None:
    url = db_url
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATING_PROCESS, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    failures = [err for (_out, err), p in zip(outcomes, processes, strict=True) if p.returncode]
    assert failures == []
    assert [out.strip() for out, _err in outcomes] == [f"migrated {head_revision()}"] * 4


def _migrate_to(revision: str) -> Any:
    def migrate(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    return migrate


async def test_existing_notebooks_move_into_their_apps_workspaces(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate_to("0004"))
            now = datetime(2026, 11, 30, 10, tzinfo=UTC)
            await conn.execute(
                text(
                    'INSERT INTO command (id, app, type, "user", payload, status, attempts, '
                    "correlation_id, created_at, updated_at) VALUES "
                    "('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'app-x', 'save', 'bob', '{}', "
                    "'succeeded', 1, 'c', :now, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    'INSERT INTO notebook (id, "user", path, deleted, created_at, updated_at) '
                    "VALUES ('11111111111111111111111111111111', 'bob', 'a.ipynb', false, "
                    ":now, :now), ('22222222222222222222222222222222', 'bob', 'b.ipynb', "
                    "false, :now, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text("INSERT INTO notebook_blob (sha256, size, content) VALUES ('s', 2, '{}')")
            )
            await conn.execute(
                text(
                    "INSERT INTO notebook_version (id, notebook_id, sha256, size, origin, "
                    "command_id, created_at) VALUES ('33333333333333333333333333333333', "
                    "'11111111111111111111111111111111', 's', 2, 'command', "
                    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', :now)"
                ),
                {"now": now},
            )
        await create_schema(engine)
        async with engine.connect() as conn:
            owners = (
                await conn.execute(text('SELECT path, "user" FROM notebook ORDER BY path'))
            ).all()
            workspaces = (
                await conn.execute(text('SELECT name, app, "user" FROM workspace ORDER BY app'))
            ).all()
    finally:
        await engine.dispose()
    written_by_app_x = workspace_name("app-x", "bob")
    only_saved_in_jupyter = workspace_name(LEGACY_APP, "bob")
    assert [tuple(row) for row in owners] == [
        ("a.ipynb", written_by_app_x),
        ("b.ipynb", only_saved_in_jupyter),
    ]
    assert [tuple(row) for row in workspaces] == [
        (written_by_app_x, "app-x", "bob"),
        (only_saved_in_jupyter, LEGACY_APP, "bob"),
    ]
