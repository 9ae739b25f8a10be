"""The SQLite batch writer stores rows exactly as the engine does, all or nothing,
in one statement or, for batches larger than one statement takes, in several."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from runtime.db.command_records import COMMAND_TABLE, NewCommand
from runtime.db.commands import CommandStore
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.sqlite_batch import SqliteBatchInserter


def _row(user: str) -> dict[str, object]:
    return NewCommand(
        app="tests", type="ensure-user", user=user, payload={"user": user}, correlation_id="c"
    ).as_row()


async def _stored(engine_url: str, user: str) -> tuple[object, ...]:
    engine = make_engine(engine_url)
    try:
        async with engine.connect() as connection:
            columns = ", ".join(
                f"typeof({c.name}), {c.name}" for c in COMMAND_TABLE.columns if c.name != "id"
            )
            found = await connection.execute(
                text(f'SELECT {columns} FROM command WHERE "user" = :user'), {"user": user}
            )
            return tuple(found.one())
    finally:
        await engine.dispose()


async def test_rows_are_stored_as_the_engine_stores_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Libraries may register their own sqlite3 datetime adapter, process-wide (one in
    # this test suite does): values must reach SQLite converted by the columns' types.
    monkeypatch.setitem(
        sqlite3.adapters, (datetime, sqlite3.PrepareProtocol), lambda value: value.isoformat()
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
    engine = make_engine(url)
    await create_schema(engine)
    by_engine = _row("alice")
    by_batch = {**by_engine, "id": uuid.uuid4(), "user": "bob"}
    async with engine.begin() as connection:
        await connection.execute(COMMAND_TABLE.insert(), [by_engine])
    writer = SqliteBatchInserter(engine, COMMAND_TABLE, str(tmp_path / "o.db"))
    await writer.insert([by_batch])
    await writer.close()
    await engine.dispose()
    engine_row, batch_row = await _stored(url, "alice"), await _stored(url, "bob")
    differing = [i for i, (a, b) in enumerate(zip(engine_row, batch_row, strict=True)) if a != b]
    user_column = [c.name for c in COMMAND_TABLE.columns if c.name != "id"].index("user")
    assert differing == [2 * user_column + 1]  # only the user's value differs


async def test_a_failed_batch_leaves_nothing_and_the_next_one_works(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
    engine = make_engine(url)
    await create_schema(engine)
    writer = SqliteBatchInserter(engine, COMMAND_TABLE, str(tmp_path / "o.db"))
    first = _row("carol")
    await writer.insert([first])
    with pytest.raises(sqlite3.IntegrityError):
        await writer.insert([_row("dave"), first])  # the second row repeats an id
    await writer.insert([_row("erin")])
    await writer.close()
    async with engine.connect() as connection:
        users = (await connection.execute(text('SELECT "user" FROM command'))).scalars().all()
    await engine.dispose()
    assert sorted(users) == ["carol", "erin"]


async def test_a_batch_of_several_statements_is_one_transaction(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
    engine = make_engine(url)
    await create_schema(engine)
    writer = SqliteBatchInserter(
        engine, COMMAND_TABLE, str(tmp_path / "o.db"), max_rows_per_statement=2
    )
    five = [_row(f"f{i}") for i in range(5)]  # statements of 2, 2 and 1 rows
    await writer.insert(five)
    with pytest.raises(sqlite3.IntegrityError):  # the last statement repeats an id
        await writer.insert([_row("g0"), _row("g1"), _row("g2"), _row("g3"), five[0]])
    await writer.close()
    async with engine.connect() as connection:
        users = (await connection.execute(text('SELECT "user" FROM command'))).scalars().all()
    await engine.dispose()
    assert sorted(users) == [f"f{i}" for i in range(5)]


async def test_concurrent_records_are_all_committed_and_readable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    await create_schema(engine)
    store = CommandStore(make_sessionmaker(engine))
    commands = [
        NewCommand(app="tests", type="ensure-user", user=f"u{i}", payload={}, correlation_id="c")
        for i in range(300)
    ]
    await asyncio.gather(*(store.record(c) for c in commands))
    found = [await store.get(c.id, app="tests") for c in commands]
    await store.close()
    await engine.dispose()
    assert all(
        r is not None and r.created_at == c.created_at for r, c in zip(found, commands, strict=True)
    )
