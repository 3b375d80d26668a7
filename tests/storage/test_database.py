"""The Database handle under concurrent use."""

from __future__ import annotations

import asyncio
import contextlib

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


async def test_a_writer_cancelled_as_the_lock_is_granted_ends_cancelled(
    database: Database,
) -> None:
    # A task cancelled in the very step the write lock is handed to it must end cancelled,
    # not run on as if never asked (Python 3.11's wait_for lost such cancellations), and
    # must leave the lock free for the next writer. The step is found by trying each delay.
    for steps in range(8):
        holding = asyncio.Event()
        release = asyncio.Event()

        async def holder(holding: asyncio.Event, release: asyncio.Event) -> None:
            async with database.transaction():
                holding.set()
                await release.wait()

        async def waiter() -> None:
            async with database.transaction():
                pass

        held = asyncio.create_task(holder(holding, release))
        await holding.wait()
        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)  # queued behind the holder
        release.set()
        for _ in range(steps):
            await asyncio.sleep(0)
        accepted = waiting.cancel()
        await held
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert waiting.cancelled() == accepted, f"cancelled after {steps} steps, ran on"
        # whatever happened, the lock is free
        async with asyncio.timeout(5), database.transaction():
            pass
