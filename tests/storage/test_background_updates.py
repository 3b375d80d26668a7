"""Background updates: order, persisted progress, resuming after a crash, status."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.background_updates import (
    BackgroundUpdater,
    BatchResult,
    pending_background_updates,
    schedule_background_update,
)
from ranvier.storage.database import Database

# a table the test updates fill, standing in for the rows a real update rewrites
scratch_metadata = MetaData()
processed = Table("test_processed", scratch_metadata, Column("item", Integer, primary_key=True))

ITEMS = 25


async def make_scratch_table(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(scratch_metadata.create_all)


async def processed_items(db: Database) -> list[int]:
    async with db.read() as conn:
        return sorted((await conn.execute(select(processed.c.item))).scalars())


def counting_handler(calls: list[tuple[int, int]], *, fail_at: int | None = None) -> Any:
    """Processes items 0..ITEMS-1 a batch at a time, recording (start, batch_size) per call;
    raises after doing the work of the batch starting at `fail_at`, as a crash would."""

    async def handler(
        conn: AsyncConnection, progress: dict[str, Any], batch_size: int
    ) -> BatchResult:
        start = int(progress.get("next", 0))
        calls.append((start, batch_size))
        end = min(start + batch_size, ITEMS)
        if end > start:
            await conn.execute(insert(processed), [{"item": i} for i in range(start, end)])
        if fail_at is not None and start >= fail_at:
            raise RuntimeError("simulated crash mid-update")
        return BatchResult({"next": end}, end - start, end >= ITEMS)

    return handler


async def test_depends_on_and_ordering_decide_the_run_order(database: Database) -> None:
    async with database.transaction() as conn:
        await schedule_background_update(conn, "c_after_a", ordering=0, depends_on="a_first")
        await schedule_background_update(conn, "a_first", ordering=5)
        await schedule_background_update(conn, "b_second", ordering=7)

    ran: list[str] = []

    def recorder(name: str, batches: int) -> Any:
        async def handler(
            conn: AsyncConnection, progress: dict[str, Any], batch_size: int
        ) -> BatchResult:
            ran.append(name)
            done_batches = int(progress.get("batches", 0)) + 1
            return BatchResult({"batches": done_batches}, 1, done_batches >= batches)

        return handler

    updater = BackgroundUpdater(database)
    updater.register("a_first", recorder("a_first", 2))
    updater.register("b_second", recorder("b_second", 1))
    updater.register("c_after_a", recorder("c_after_a", 1))

    assert [u.name for u in await pending_background_updates(database)] == [
        "c_after_a",
        "a_first",
        "b_second",
    ]
    assert await updater.run_until_done() == 4
    # c_after_a has the lowest ordering but waits for a_first to finish
    assert ran == ["a_first", "a_first", "c_after_a", "b_second"]
    assert await pending_background_updates(database) == []
    assert await updater.has_completed_all()


async def test_progress_is_saved_after_each_batch(database: Database) -> None:
    await make_scratch_table(database)
    async with database.transaction() as conn:
        await schedule_background_update(conn, "fill", progress={"next": 0})
    calls: list[tuple[int, int]] = []
    updater = BackgroundUpdater(database, batch_size=10)
    updater.register("fill", counting_handler(calls))

    assert await updater.run_batch()
    [pending] = await pending_background_updates(database)
    assert pending.progress == {"next": 10}
    assert pending.total_item_count == 10
    assert pending.total_duration_ms > 0
    assert await processed_items(database) == list(range(10))


async def test_crash_mid_update_resumes_without_redoing_batches(database: Database) -> None:
    await make_scratch_table(database)
    async with database.transaction() as conn:
        await schedule_background_update(conn, "fill")

    calls: list[tuple[int, int]] = []
    updater = BackgroundUpdater(
        database, batch_size=10, minimum_batch_size=10, maximum_batch_size=10
    )
    updater.register("fill", counting_handler(calls, fail_at=10))
    assert await updater.run_batch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        await updater.run_batch()
    # the failed batch's rows and its progress were rolled back together
    assert await processed_items(database) == list(range(10))
    [pending] = await pending_background_updates(database)
    assert pending.progress == {"next": 10}
    assert pending.total_item_count == 10

    # a new process: a new updater continues from the saved progress
    resumed_calls: list[tuple[int, int]] = []
    resumed = BackgroundUpdater(
        database, batch_size=10, minimum_batch_size=10, maximum_batch_size=10
    )
    resumed.register("fill", counting_handler(resumed_calls))
    assert await resumed.run_until_done() == 2
    assert [start for start, _ in resumed_calls] == [10, 20]
    # every item exactly once (the primary key would have refused a repeat)
    assert await processed_items(database) == list(range(ITEMS))
    assert await pending_background_updates(database) == []


async def test_status_has_the_admin_api_shape(database: Database) -> None:
    await make_scratch_table(database)
    async with database.transaction() as conn:
        await schedule_background_update(conn, "fill")
    updater = BackgroundUpdater(database, batch_size=10)
    updater.register("fill", counting_handler([]))

    assert updater.status() == {"enabled": True, "current_updates": {}}
    await updater.run_batch()
    status = updater.status()
    assert status["enabled"] is True
    assert set(status["current_updates"]) == {"master"}
    current = status["current_updates"]["master"]
    assert set(current) == {
        "name",
        "total_item_count",
        "total_duration_ms",
        "average_items_per_ms",
    }
    assert current["name"] == "fill"
    assert current["total_item_count"] == 10
    assert isinstance(current["total_duration_ms"], float) and current["total_duration_ms"] > 0
    assert current["average_items_per_ms"] > 0

    updater.enabled = False
    assert updater.status()["enabled"] is False
    updater.enabled = True
    await updater.run_until_done()
    assert updater.status()["current_updates"] == {}


async def test_batch_size_adapts_to_the_measured_rate(database: Database) -> None:
    await make_scratch_table(database)
    async with database.transaction() as conn:
        await schedule_background_update(conn, "fill")
    calls: list[tuple[int, int]] = []
    updater = BackgroundUpdater(
        database, batch_size=2, maximum_batch_size=7, target_batch_ms=10_000
    )
    updater.register("fill", counting_handler(calls))
    await updater.run_until_done()
    assert calls[0] == (0, 2)
    # a fast handler is given bigger batches, up to the maximum
    assert calls[1][1] == 7


async def test_updates_without_a_handler_stay_queued(database: Database) -> None:
    async with database.transaction() as conn:
        await schedule_background_update(conn, "from_a_newer_version")
        await schedule_background_update(conn, "needs_it", depends_on="from_a_newer_version")
    updater = BackgroundUpdater(database)
    updater.register("needs_it", counting_handler([]))
    assert await updater.run_batch() is False
    assert [u.name for u in await pending_background_updates(database)] == [
        "from_a_newer_version",
        "needs_it",
    ]


async def test_handler_outside_a_transaction(database: Database) -> None:
    async with database.transaction() as conn:
        await schedule_background_update(conn, "index")
    seen: list[dict[str, Any]] = []

    async def handler(db: Database, progress: dict[str, Any], batch_size: int) -> BatchResult:
        seen.append(progress)
        step = int(progress.get("step", 0)) + 1
        return BatchResult({"step": step}, 1, step == 2)

    updater = BackgroundUpdater(database)
    updater.register_outside_transaction("index", handler)
    assert await updater.run_until_done() == 2
    assert seen == [{}, {"step": 1}]


async def test_registering_a_name_twice_is_an_error(database: Database) -> None:
    updater = BackgroundUpdater(database)
    updater.register("x", counting_handler([]))
    with pytest.raises(ValueError, match="registered twice"):
        updater.register("x", counting_handler([]))


async def test_started_updater_runs_in_the_background(database: Database) -> None:
    import asyncio

    await make_scratch_table(database)
    async with database.transaction() as conn:
        await schedule_background_update(conn, "fill")
    updater = BackgroundUpdater(database, batch_size=10)
    updater.register("fill", counting_handler([]))
    updater.start(interval_s=0)
    try:
        for _ in range(200):
            if await updater.has_completed_all():
                break
            await asyncio.sleep(0.02)
    finally:
        await updater.stop()
    assert await processed_items(database) == list(range(ITEMS))
