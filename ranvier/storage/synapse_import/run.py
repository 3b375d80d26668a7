"""Running `ranvier import-synapse`: the safety checks on Ranvier's database, the steps in
batches with their progress, and the verification pass.

Every batch is written in one transaction of Ranvier's database together with the key of
its last Synapse row (progress.py), so an import stopped midway continues where it stopped
and writes no row twice. While any step is unfinished the progress table stays, and a
server refuses to start on the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from ranvier.storage.database import Database
from ranvier.storage.schema import schema_status, upgrade
from ranvier.storage.stream_ids import next_position, stream_positions
from ranvier.storage.synapse_import.progress import (
    has_progress_table,
    import_metadata,
    synapse_import_progress,
    synapse_import_source,
)
from ranvier.storage.synapse_import.source import SynapseDatabase, SynapseImportError
from ranvier.storage.synapse_import.tables import STEPS, ImportContext, Step
from ranvier.storage.users import users

Echo = Callable[[str], None]
DEFAULT_BATCH_SIZE = 1000
# a big table shows its first batch, then a line this often, then its end
PROGRESS_SECONDS = 2.0


@dataclass
class StepReport:
    name: str
    source_rows: int
    target_rows: int


@dataclass
class ImportSummary:
    resumed: bool
    steps: list[StepReport] = field(default_factory=list)
    seconds: float = 0.0


def _column(key: str) -> str:
    return key.split(".", 1)[-1]


async def prepare_target(
    target: Database, source: SynapseDatabase, server_name: str, now_ms: int, echo: Echo
) -> bool:
    """Bring Ranvier's schema up to date and check it may receive the import; True when an
    earlier, interrupted import of the same Synapse database is resumed."""
    status = await schema_status(target)
    if status.ahead_of_code:
        raise SynapseImportError(
            f"Ranvier's database at {target.location} is at schema revision {status.current}, "
            "which this Ranvier does not know. Import into a new, empty database."
        )
    if status.pending:
        await upgrade(target, "head", echo)
    async with target.engine.connect() as conn:
        resuming = await conn.run_sync(has_progress_table)
    if resuming:
        async with target.read() as conn:
            earlier = (await conn.execute(select(synapse_import_source))).first()
        if earlier is not None and (earlier.location, earlier.server_name) != (
            source.location,
            server_name,
        ):
            raise SynapseImportError(
                f"Ranvier's database holds an unfinished import of {earlier.server_name}'s "
                f"Synapse database at {earlier.location}, not of {source.location}. Run the "
                "import with the Synapse configuration it began with, or start again with a "
                "new, empty Ranvier database."
            )
        return True
    async with target.read() as conn:
        existing = int((await conn.execute(select(func.count()).select_from(users))).scalar_one())
    if existing:
        raise SynapseImportError(
            f"Ranvier's database at {target.location} already has {existing} user(s): the "
            "import only fills a new server, it does not merge two. Point Ranvier's "
            "`database` section at a new, empty database (or delete this one) and run the "
            "import again."
        )
    async with target.engine.begin() as conn:
        await conn.run_sync(_create_progress_table)
        await conn.execute(
            insert(synapse_import_source).values(
                server_name=server_name, location=source.location, started_ts=now_ms
            )
        )
    return False


def _create_progress_table(connection: Connection) -> None:
    import_metadata.create_all(connection)


async def run_import(
    source: SynapseDatabase,
    target: Database,
    ctx: ImportContext,
    *,
    resumed: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    echo: Echo,
) -> ImportSummary:
    """Every step, then the verification pass; drops the progress table when all match."""
    started = time.monotonic()
    summary = ImportSummary(resumed=resumed)
    params = {
        "server_name": ctx.server_name,
        "suffix": f":{ctx.server_name}",
        "suffix_len": len(ctx.server_name) + 1,
    }
    for step in STEPS:
        await _run_step(source, target, step, ctx, params, batch_size, echo)
    echo("Verifying: counting rows on both sides")
    mismatches = []
    for step in STEPS:
        source_rows = int(await source.scalar(step.count_sql(), params) or 0)
        async with target.read() as conn:
            target_rows = await step.target_count(conn)
        summary.steps.append(StepReport(step.name, source_rows, target_rows))
        if source_rows != target_rows:
            mismatches.append(f"{step.name}: {source_rows} in Synapse, {target_rows} in Ranvier")
    if mismatches:
        raise SynapseImportError(
            "The verification pass found different counts, so the import is left unfinished "
            "(Ranvier will not start on it): " + "; ".join(mismatches) + ". Was Synapse "
            "running during the import? Stop it, empty Ranvier's database and import again."
        )
    async with target.engine.begin() as conn:
        await conn.run_sync(import_metadata.drop_all)
    summary.seconds = time.monotonic() - started
    return summary


async def _run_step(
    source: SynapseDatabase,
    target: Database,
    step: Step,
    ctx: ImportContext,
    params: dict[str, Any],
    batch_size: int,
    echo: Echo,
) -> None:
    async with target.read() as conn:
        row = (
            await conn.execute(
                select(synapse_import_progress).where(synapse_import_progress.c.step == step.name)
            )
        ).first()
    if row is not None and row.done:
        echo(f"{step.name}: done in an earlier run ({row.copied_rows} rows)")
        return
    after: Sequence[Any] | None = (
        None if row is None or row.last_key is None else orjson.loads(row.last_key)
    )
    copied = 0 if row is None else int(row.copied_rows)
    total = int(await source.scalar(step.count_sql(), params) or 0)
    if row is None:
        async with target.transaction() as conn:
            await conn.execute(
                insert(synapse_import_progress).values(
                    step=step.name, last_key=None, copied_rows=0, done=False
                )
            )
    shown_at: float | None = None
    shown = copied
    while True:
        sql, batch_params = step.batch_sql(after, batch_size)
        batch = await source.rows(sql, {**params, **batch_params})
        if not batch:
            break
        rows = [step.convert(r._mapping, ctx) for r in batch]
        written = [r for r in rows if r is not None]
        after = [batch[-1]._mapping[_column(key)] for key in step.key]
        async with target.transaction() as conn:
            if step.stream is not None and written:
                first = await _reserve(conn, step.stream, len(written))
                for offset, written_row in enumerate(written):
                    written_row["stream_id"] = first + offset
            await step.write(conn, written)
            copied += len(batch)
            await conn.execute(
                update(synapse_import_progress)
                .where(synapse_import_progress.c.step == step.name)
                .values(last_key=orjson.dumps(after).decode(), copied_rows=copied)
            )
        if shown_at is None or time.monotonic() - shown_at >= PROGRESS_SECONDS:
            echo(f"{step.name}: {copied}/{total} rows")
            shown_at, shown = time.monotonic(), copied
        if len(batch) < batch_size:
            break
    if copied != shown:
        echo(f"{step.name}: {copied}/{total} rows")
    async with target.transaction() as conn:
        await conn.execute(
            update(synapse_import_progress)
            .where(synapse_import_progress.c.step == step.name)
            .values(done=True)
        )
    if copied == 0:
        echo(f"{step.name}: nothing to import")


async def _reserve(conn: Any, stream: str, count: int) -> int:
    """Take `count` consecutive positions of `stream`; the first of them."""
    first = await next_position(conn, stream)
    if count > 1:
        await conn.execute(
            update(stream_positions)
            .where(stream_positions.c.stream_name == stream)
            .values(position=stream_positions.c.position + (count - 1))
        )
    return first
