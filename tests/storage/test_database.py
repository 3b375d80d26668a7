"""The Database handle under concurrent use."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from ranvier.storage.background_updates import background_updates, schedule_background_update
from ranvier.storage.database import Database


async def test_concurrent_read_then_write_transactions_all_commit(database: Database) -> None:
    # Each transaction reads before it writes: on SQLite a deferred BEGIN would let two of
    # them hold read locks and fail one with "database is locked" at once.
    async def writer(n: int) -> None:
        async with database.transaction() as conn:
            await conn.execute(select(background_updates.c.update_name))
            await asyncio.sleep(0)
            await schedule_background_update(conn, f"update_{n:02d}")

    await asyncio.gather(*(writer(n) for n in range(20)))
    async with database.read() as conn:
        names = (await conn.execute(select(background_updates.c.update_name))).scalars().all()
    assert sorted(names) == [f"update_{n:02d}" for n in range(20)]


async def test_a_failed_transaction_leaves_nothing_behind(database: Database) -> None:
    try:
        async with database.transaction() as conn:
            await schedule_background_update(conn, "half_done")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with database.read() as conn:
        assert (await conn.execute(select(background_updates))).first() is None
