"""The connection pool behind Database: cp_min connections opened at start-up and kept,
never more than cp_max in use, requests served in order of arrival, and a request that
cannot get a connection in time refused with DatabaseUnavailable (a 503), not a crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import Database, open_database
from ranvier.storage.errors import DatabaseUnavailable
from tests.conftest import new_database_config

CP_MIN = 3
CP_MAX = 4


@pytest.fixture
async def pooled(database_config: DatabaseConfig) -> AsyncIterator[Database]:
    args = {**database_config.args, "cp_min": CP_MIN, "cp_max": CP_MAX}
    db = await open_database(database_config.model_copy(update={"args": args}))
    try:
        yield db
    finally:
        await db.close()


async def _open_connections(db: Database) -> int:
    """Connections the server really has open, as the database sees them (PostgreSQL) or as
    the pool holds them (SQLite has no server to ask)."""
    if db.dialect == "sqlite":
        return int(db.engine.pool.checkedin())  # type: ignore[attr-defined]
    async with db.read() as conn:
        count = await conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        )
        return int(count.scalar_one())


async def test_cp_min_connections_are_open_from_the_start(pooled: Database) -> None:
    assert await _open_connections(pooled) == CP_MIN


async def test_never_more_than_cp_max_in_use_and_all_served(pooled: Database) -> None:
    in_use = 0
    most = 0

    async def reader() -> int:
        nonlocal in_use, most
        async with pooled.read() as conn:
            in_use += 1
            most = max(most, in_use)
            await asyncio.sleep(0.005)
            value = int((await conn.execute(text("SELECT 1"))).scalar_one())
            in_use -= 1
            return value

    assert await asyncio.gather(*(reader() for _ in range(200))) == [1] * 200
    assert most == CP_MAX
    assert await _open_connections(pooled) <= CP_MAX


async def test_waiting_requests_are_served_in_order_of_arrival(pooled: Database) -> None:
    release = asyncio.Event()
    served: list[int] = []

    async def holder() -> None:
        async with pooled.read():
            await release.wait()

    async def waiter(n: int) -> None:
        async with pooled.read():
            served.append(n)
        # straight back in the queue: it must not overtake those already waiting
        async with pooled.read():
            served.append(100 + n)

    holders = [asyncio.create_task(holder()) for _ in range(CP_MAX)]
    await asyncio.sleep(0.01)
    waiters = []
    for n in range(20):
        waiters.append(asyncio.create_task(waiter(n)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*holders, *waiters)
    assert served[:20] == list(range(20))


async def test_a_request_that_waits_too_long_is_refused_as_unavailable(
    pooled: Database,
) -> None:
    pooled.connection_wait_seconds = 0.1
    release = asyncio.Event()

    async def holder() -> None:
        async with pooled.read():
            await release.wait()

    holders = [asyncio.create_task(holder()) for _ in range(CP_MAX)]
    await asyncio.sleep(0.01)
    with pytest.raises(DatabaseUnavailable) as refused:
        async with pooled.read():
            pass
    assert refused.value.retry_after_seconds > 0
    release.set()
    await asyncio.gather(*holders)
    # the refused request gave its place back: the pool still serves everyone
    async with pooled.transaction() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    assert await pooled.reachable()


async def test_cp_min_zero_opens_only_what_is_used(tmp_path: Path) -> None:
    async for config in new_database_config("sqlite", tmp_path):
        args = {**config.args, "cp_min": 0, "cp_max": 2}
        db = await open_database(config.model_copy(update={"args": args}))
        try:
            # the start-up check's connection, kept
            assert await _open_connections(db) == 1
        finally:
            await db.close()
