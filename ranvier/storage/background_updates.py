"""Background updates: long data rewrites that run in small batches while the server serves.

A migration that needs to rewrite many rows inserts a row into `background_updates` naming
the update; the code registers a handler under that name with a `BackgroundUpdater`. Each
batch runs in one transaction together with the saving of its progress, so after a crash the
update resumes after the last batch that committed and no batch is done twice. When the
handler says it is done, the row is deleted, which is what lets updates that `depends_on` it
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import BigInteger, Column, Float, Integer, String, Table, Text, delete, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

logger = logging.getLogger(__name__)

background_updates = Table(
    "background_updates",
    metadata,
    Column("update_name", String(255), primary_key=True),
    Column("progress_json", Text, nullable=False, server_default="{}"),
    Column("depends_on", String(255), nullable=True),
    Column("ordering", Integer, nullable=False, server_default="0"),
    Column("total_item_count", BigInteger, nullable=False, server_default="0"),
    Column("total_duration_ms", Float, nullable=False, server_default="0"),
    Column("average_items_per_ms", Float, nullable=True),
)

# Synapse reports its single database under this name in the admin API.
DEFAULT_DATABASE_NAME = "master"


class BatchResult(NamedTuple):
    progress: dict[str, Any]  # saved and handed to the next batch
    items: int  # how many items this batch processed, for the rate and the totals
    done: bool


# Runs one batch inside the transaction that also saves its progress.
TransactionHandler = Callable[[AsyncConnection, dict[str, Any], int], Awaitable[BatchResult]]
# Runs one batch on its own (e.g. CREATE INDEX CONCURRENTLY, which PostgreSQL refuses inside
# a transaction); progress is saved afterwards, so the batch must be safe to repeat.
DatabaseHandler = Callable[[Database, dict[str, Any], int], Awaitable[BatchResult]]


@dataclass(frozen=True)
class PendingUpdate:
    name: str
    depends_on: str | None
    ordering: int
    progress: dict[str, Any]
    total_item_count: int
    total_duration_ms: float
    average_items_per_ms: float | None


def _dumps(progress: dict[str, Any]) -> str:
    return orjson.dumps(progress).decode()


async def schedule_background_update(
    conn: AsyncConnection,
    name: str,
    *,
    ordering: int = 0,
    depends_on: str | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    """Queue an update (in the caller's transaction). Migrations insert the row themselves
    with plain SQL, since they must not depend on code that may change later."""
    await conn.execute(
        background_updates.insert().values(
            update_name=name,
            ordering=ordering,
            depends_on=depends_on,
            progress_json=_dumps(progress or {}),
        )
    )


def _pending_from_row(row: Any) -> PendingUpdate:
    return PendingUpdate(
        name=row.update_name,
        depends_on=row.depends_on,
        ordering=row.ordering,
        progress=orjson.loads(row.progress_json),
        total_item_count=int(row.total_item_count),
        total_duration_ms=float(row.total_duration_ms),
        average_items_per_ms=row.average_items_per_ms,
    )


async def pending_background_updates(db: Database) -> list[PendingUpdate]:
    """Every update not finished yet, in the order they would start."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(background_updates).order_by(
                background_updates.c.ordering, background_updates.c.update_name
            )
        )
        return [_pending_from_row(row) for row in rows]


@dataclass
class _Registered:
    # exactly one of the two is set
    in_transaction: TransactionHandler | None = None
    outside_transaction: DatabaseHandler | None = None


@dataclass
class _CurrentUpdate:
    name: str
    total_item_count: int
    total_duration_ms: float
    average_items_per_ms: float | None


class BackgroundUpdater:
    """Runs the queued updates that have handlers, one batch at a time, sizing batches so that
    each takes about `target_batch_ms`."""

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 100,
        minimum_batch_size: int = 1,
        maximum_batch_size: int = 10_000,
        target_batch_ms: float = 100.0,
        database_name: str = DEFAULT_DATABASE_NAME,
    ) -> None:
        self.db = db
        # pausing is in memory only, as with Synapse's admin API
        self.enabled = True
        self.database_name = database_name
        self._default_batch_size = batch_size
        self._minimum_batch_size = minimum_batch_size
        self._maximum_batch_size = maximum_batch_size
        self._target_batch_ms = target_batch_ms
        self._handlers: dict[str, _Registered] = {}
        self._current: _CurrentUpdate | None = None
        self._warned_unhandled: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def register(self, name: str, handler: TransactionHandler) -> None:
        """`handler(conn, progress, batch_size)` does one batch on `conn`, inside the
        transaction that then saves the progress it returns."""
        self._register(name, _Registered(in_transaction=handler))

    def register_outside_transaction(self, name: str, handler: DatabaseHandler) -> None:
        """For work that cannot run in a transaction; `handler(db, progress, batch_size)`."""
        self._register(name, _Registered(outside_transaction=handler))

    def _register(self, name: str, registered: _Registered) -> None:
        if name in self._handlers:
            raise ValueError(f"background update {name!r} is registered twice")
        self._handlers[name] = registered

    async def _next_runnable(self) -> PendingUpdate | None:
        pending = await pending_background_updates(self.db)
        waiting = {update.name for update in pending}
        for update in pending:
            if update.depends_on is not None and update.depends_on in waiting:
                continue
            if update.name not in self._handlers:
                if update.name not in self._warned_unhandled:
                    self._warned_unhandled.add(update.name)
                    logger.warning(
                        "background update %r is queued but this version has no handler "
                        "for it; it stays queued",
                        update.name,
                    )
                continue
            return update
        return None

    def _batch_size(self, average_items_per_ms: float | None) -> int:
        if not average_items_per_ms:
            return self._default_batch_size
        size = int(average_items_per_ms * self._target_batch_ms)
        return max(self._minimum_batch_size, min(self._maximum_batch_size, size))

    async def run_batch(self) -> bool:
        """Run one batch of the first runnable update. False when there is nothing to run.
        A handler's exception propagates, with the failed batch's work and progress undone."""
        update = await self._next_runnable()
        if update is None:
            self._current = None
            return False
        if self._current is None or self._current.name != update.name:
            self._current = _CurrentUpdate(
                update.name,
                update.total_item_count,
                update.total_duration_ms,
                update.average_items_per_ms,
            )
        registered = self._handlers[update.name]
        batch_size = self._batch_size(self._current.average_items_per_ms)
        if registered.in_transaction is not None:
            async with self.db.transaction() as conn:
                # read again under the write lock: another runner may have moved it on
                row = (
                    await conn.execute(
                        select(background_updates).where(
                            background_updates.c.update_name == update.name
                        )
                    )
                ).first()
                if row is None:
                    return True
                started = time.monotonic()
                progress = orjson.loads(row.progress_json)
                result = BatchResult(*await registered.in_transaction(conn, progress, batch_size))
                await self._save(conn, update.name, result, started)
        else:
            assert registered.outside_transaction is not None
            started = time.monotonic()
            batch = registered.outside_transaction(self.db, update.progress, batch_size)
            result = BatchResult(*await batch)
            async with self.db.transaction() as conn:
                await self._save(conn, update.name, result, started)
        if result.done:
            logger.info(
                "background update %r finished: %d items in %.0f ms",
                update.name,
                self._current.total_item_count,
                self._current.total_duration_ms,
            )
            self._current = None
        return True

    async def _save(
        self, conn: AsyncConnection, name: str, result: BatchResult, started: float
    ) -> None:
        assert self._current is not None
        elapsed_ms = max((time.monotonic() - started) * 1000.0, 0.001)
        current = self._current
        rate = result.items / elapsed_ms
        if current.average_items_per_ms is None or result.items == 0:
            average = rate if result.items else current.average_items_per_ms
        else:
            # exponential average: recent batches count most
            average = 0.2 * rate + 0.8 * current.average_items_per_ms
        if result.done:
            await conn.execute(
                delete(background_updates).where(background_updates.c.update_name == name)
            )
        else:
            await conn.execute(
                sql_update(background_updates)
                .where(background_updates.c.update_name == name)
                .values(
                    progress_json=_dumps(result.progress),
                    total_item_count=background_updates.c.total_item_count + result.items,
                    total_duration_ms=background_updates.c.total_duration_ms + elapsed_ms,
                    average_items_per_ms=average,
                )
            )
        # only counted once the transaction is past the statements that could fail
        current.total_item_count += result.items
        current.total_duration_ms += elapsed_ms
        current.average_items_per_ms = average

    async def run_until_done(self) -> int:
        """Run batches until nothing runnable is left; returns how many batches ran."""
        batches = 0
        while await self.run_batch():
            batches += 1
        return batches

    async def queue(self, name: str) -> bool:
        """Queue `name` to run (again) from the start; False if it is queued already."""
        async with self.db.transaction() as conn:
            queued = (
                await conn.execute(
                    select(background_updates.c.update_name).where(
                        background_updates.c.update_name == name
                    )
                )
            ).first()
            if queued is not None:
                return False
            await schedule_background_update(conn, name)
        return True

    async def has_completed_all(self) -> bool:
        return not await pending_background_updates(self.db)

    def start(self, *, interval_s: float = 0.1, retry_after_error_s: float = 30.0) -> None:
        """Run updates in the background until `stop()`, pausing between batches so that
        the server's own queries get the database in between."""
        if self._task is not None:
            raise RuntimeError("background updater already started")
        self._task = asyncio.create_task(self._loop(interval_s, retry_after_error_s))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self, interval_s: float, retry_after_error_s: float) -> None:
        idle_s = max(interval_s, 5.0)
        while True:
            if not self.enabled:
                await asyncio.sleep(idle_s)
                continue
            try:
                ran = await self.run_batch()
            except Exception:
                logger.exception("background update batch failed; retrying later")
                await asyncio.sleep(retry_after_error_s)
                continue
            await asyncio.sleep(interval_s if ran else idle_s)

    def status(self) -> dict[str, Any]:
        """The body of GET /_synapse/admin/v1/background_updates/status."""
        current_updates: dict[str, Any] = {}
        if self._current is not None:
            current = self._current
            current_updates[self.database_name] = {
                "name": current.name,
                "total_item_count": current.total_item_count,
                "total_duration_ms": current.total_duration_ms,
                "average_items_per_ms": current.average_items_per_ms or 0.0,
            }
        return {"enabled": self.enabled, "current_updates": current_updates}
