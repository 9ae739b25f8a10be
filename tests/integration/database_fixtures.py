"""Database fixtures: every database test runs on SQLite AND on a real PostgreSQL.

A test module loads them with ``pytest_plugins = ["tests.integration.database_fixtures"]``.
The PostgreSQL server (Debian package) starts once per session, when first needed (well
under a second), and is stopped by PID at the end; each test gets a fresh database on
it, or a fresh SQLite file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from devstack.postgres import POSTGRES_ROOT, PostgresServer
from runtime.db.engine import create_schema, make_engine, make_sessionmaker

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL server on a free loopback port (skipped only if not installed)."""
    if not any(POSTGRES_ROOT.glob("*/bin/initdb")):
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; make test does)")
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fresh_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """URL of a new, empty database on ``backend`` (``sqlite`` or ``postgresql``)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend in turn."""
    return fresh_database_url(str(request.param), tmp_path, request)


@pytest.fixture
async def db_sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on a database migrated to head (disposed afterwards)."""
    engine = make_engine(db_url)
    await create_schema(engine)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()
