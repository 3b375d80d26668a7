"""SQLite run on the event loop: writers take turns, readers never wait for them, and a
writer that cannot get its turn in SQLite's busy timeout is refused as unavailable (503)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from ranvier.config.models import DatabaseConfig
from ranvier.storage import database as database_module
from ranvier.storage.database import Database, open_database
from ranvier.storage.errors import DatabaseUnavailable


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    config = DatabaseConfig(name="sqlite3", args={"database": str(tmp_path / "driver.db")})
    db = await open_database(config)
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, writer TEXT)"))
    yield db
    await db.close()


async def test_concurrent_writers_take_turns_and_all_commit(sqlite_db: Database) -> None:
    async def writer(number: int) -> None:
        for k in range(20):
            async with sqlite_db.transaction() as conn:
                await conn.execute(
                    text("INSERT INTO t (k, writer) VALUES (:k, :w)"),
                    {"k": number * 100 + k, "w": f"w{number}"},
                )
                # give the other writers a chance to try while this one holds the lock
                await asyncio.sleep(0)

    await asyncio.gather(*(writer(i) for i in range(5)))
    async with sqlite_db.read() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
    assert count == 100


async def test_a_failed_writer_rolls_back_and_releases_its_turn(sqlite_db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with sqlite_db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k, writer) VALUES (1, 'lost')"))
            raise RuntimeError("handler failed")
    async with sqlite_db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (k, writer) VALUES (2, 'kept')"))
    async with sqlite_db.read() as conn:
        rows = (await conn.execute(text("SELECT writer FROM t"))).scalars().all()
    assert rows == ["kept"]


async def test_readers_see_committed_data_while_a_writer_holds_its_turn(
    sqlite_db: Database,
) -> None:
    async with sqlite_db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (k, writer) VALUES (1, 'first')"))
    async with sqlite_db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (k, writer) VALUES (2, 'uncommitted')"))
        async with sqlite_db.read() as reader:
            rows = (await reader.execute(text("SELECT writer FROM t"))).scalars().all()
        assert rows == ["first"]


async def test_a_writer_that_waits_too_long_is_refused_as_unavailable(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    async with sqlite_db.transaction():
        with pytest.raises(DatabaseUnavailable, match="database is locked"):
            async with sqlite_db.transaction():
                pass
