"""Schema migrations (Alembic), driven from code: no ``alembic.ini`` is needed at run time.

``upgrade_connection`` brings one open connection's database to the newest revision;
``runtime.db.engine.create_schema`` calls it under a lock so that several
processes starting at once do not race.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent
INITIAL_REVISION = "0001"
VERSION_TABLE = "alembic_version"
_A_TABLE_OF_THE_INITIAL_SCHEMA = "command"


def alembic_config() -> Config:
    """An Alembic config pointing at this package's migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision id."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at (None when unversioned)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    row = connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").first()
    return None if row is None else str(row[0])


def upgrade_connection(connection: Connection) -> None:
    """Upgrade the database behind ``connection`` to the newest revision.

    The caller holds the migration lock and commits. A database created before
    migrations existed (tables made by ``create_all``, no version table) is adopted
    by stamping it at the initial revision, whose schema it has, before upgrading.
    """
    config = alembic_config()
    config.attributes["connection"] = connection
    inspector = inspect(connection)
    if not inspector.has_table(VERSION_TABLE) and inspector.has_table(
        _A_TABLE_OF_THE_INITIAL_SCHEMA
    ):
        command.stamp(config, INITIAL_REVISION)
    command.upgrade(config, "head")
