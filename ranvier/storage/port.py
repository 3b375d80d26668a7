"""`ranvier port-db`: copy a Ranvier SQLite database into PostgreSQL.

The tables copied are every table the schema declares (`ranvier.storage.metadata`, filled
by importing each store), so a table a new revision adds is ported without a change here,
plus the search index, which each engine builds differently (storage/search.py). Tables are
copied parents first (their foreign keys' order), each in batches in the order of its
primary key (SQLite's rowid for a table without one), every batch written in one PostgreSQL
transaction together with the key of its last row (storage/port_progress.py): a port that
stops midway continues from there when run again, and never writes a row twice.

SQLite stores what it is given whatever the column's declared type, so each value is
brought to the column's type before PostgreSQL sees it (0/1 to booleans, integer text to
integers), and a value that cannot be stops the port naming its table, column and row.
PostgreSQL text cannot hold NUL characters, which SQLite's can: they are dropped, and
counted in the summary.

Afterwards the sequences behind generated keys are moved past the copied rows, and a
verification pass compares every table's row count, and its first and last rows, on both
sides.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    func,
    insert,
    inspect,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

import ranvier.storage
from ranvier.config.models import DatabaseConfig
from ranvier.storage import search
from ranvier.storage.database import Database, open_database
from ranvier.storage.errors import StorageError
from ranvier.storage.metadata import metadata
from ranvier.storage.port_progress import port_db_progress, port_db_source, port_metadata
from ranvier.storage.schema import schema_status, upgrade
from ranvier.storage.server_hold import hold_exclusively
from ranvier.storage.server_info import ServerInfo, get_server_info

Echo = Callable[[str], None]
# the search index: no declaration, a virtual FTS5 table on SQLite (see module docstring)
SEARCH_TABLE = "event_search"
DEFAULT_BATCH_SIZE = 1000
# rows compared one by one at each end of every table in the verification pass
SAMPLE_ROWS = 50
# how often progress is shown when not asked for every batch
PROGRESS_INTERVAL_SECONDS = 2.0


class PortError(StorageError):
    """The port cannot go on; the message says why and what to do."""


@dataclass
class TableReport:
    name: str
    source_rows: int
    target_rows: int
    nul_characters_dropped: int = 0


@dataclass
class PortSummary:
    source: str
    target: str
    revision: str
    resumed: bool
    tables: list[TableReport] = field(default_factory=list)
    sequences_moved: int = 0
    seconds: float = 0.0


def ported_tables() -> list[Table]:
    """Every table the schema declares, parents before the tables whose foreign keys
    name them."""
    # each store declares its tables when imported: import them all so none is missed
    for module in pkgutil.iter_modules(ranvier.storage.__path__):
        importlib.import_module(f"ranvier.storage.{module.name}")
    return list(metadata.sorted_tables)


# --- values: SQLite's loose types to the declared ones ----------------------------------


class _Unconvertible(Exception):
    pass


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    raise _Unconvertible


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | bytes):
        try:
            return int(value)
        except ValueError:
            raise _Unconvertible from None
    raise _Unconvertible


def _to_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _Unconvertible from None
    raise _Unconvertible


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise _Unconvertible


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _Unconvertible from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Unconvertible


def _converter(column: Column[Any]) -> Callable[[Any], Any]:
    type_ = column.type
    # order matters: Boolean and BigInteger are both Integer-like in places
    if isinstance(type_, Boolean):
        return _to_bool
    if isinstance(type_, Integer):
        return _to_int
    if isinstance(type_, Float):
        return _to_float
    if isinstance(type_, LargeBinary):
        return _to_bytes
    if isinstance(type_, String):
        return _to_text
    return lambda value: value


@dataclass
class _TablePlan:
    """How one table is read, converted and written."""

    table: Table
    key: list[Column[Any]]  # empty: SQLite's rowid
    converters: list[tuple[Column[Any], Callable[[Any], Any]]]
    # foreign keys to the table itself: written NULL first, filled once every row is there
    # (one that may not be NULL relies on key order: rows naming only earlier rows)
    self_references: list[Column[Any]]

    @classmethod
    def of(cls, table: Table) -> _TablePlan:
        return cls(
            table=table,
            key=list(table.primary_key.columns),
            converters=[(column, _converter(column)) for column in table.columns],
            self_references=[
                fk.parent
                for fk in table.foreign_keys
                if fk.column.table is table and fk.parent.nullable
            ],
        )

    def describe_key(self, row: Any) -> str:
        if not self.key:
            return f"rowid {row[0]}"
        return ", ".join(f"{column.name}={row._mapping[column.name]!r}" for column in self.key)

    def convert(self, row: Any) -> tuple[dict[str, Any], int]:
        """The row as PostgreSQL takes it, and how many NUL characters were dropped."""
        values: dict[str, Any] = {}
        dropped = 0
        mapping = row._mapping
        for column, convert in self.converters:
            value = mapping[column.name]
            if value is not None:
                try:
                    value = convert(value)
                except _Unconvertible:
                    raise PortError(
                        f"{self.table.name}.{column.name} holds {value!r} in the row with "
                        f"{self.describe_key(row)}, which is not a {column.type} value, so "
                        "PostgreSQL cannot store it. Correct or delete that row in the SQLite "
                        "database (with the sqlite3 shell), then run port-db again: it "
                        "continues where it stopped."
                    ) from None
                if isinstance(value, str) and "\x00" in value:
                    dropped += value.count("\x00")
                    value = value.replace("\x00", "")
            values[column.key] = value
        return values, dropped

    def select_batch(self, after: list[Any] | None, limit: int) -> Any:
        if not self.key:
            rowid: ColumnElement[Any] = literal_column("rowid")
            query = select(rowid, *self.table.columns).select_from(self.table).order_by(rowid)
            if after is not None:
                query = query.where(rowid > after[0])
            return query.limit(limit)
        query = select(self.table).order_by(*self.key)
        if after is not None:
            if len(self.key) == 1:
                query = query.where(self.key[0] > after[0])
            else:
                query = query.where(tuple_(*self.key) > tuple_(*after))
        return query.limit(limit)

    def key_of(self, row: Any) -> list[Any]:
        if not self.key:
            return [row[0]]
        return [row._mapping[column.name] for column in self.key]


# --- the port ------------------------------------------------------------------------------


async def port_database(
    sqlite_path: Path,
    postgres: DatabaseConfig,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    echo: Echo,
    every_batch: bool = False,
) -> PortSummary:
    """Copy the Ranvier database in the SQLite file `sqlite_path` into the PostgreSQL
    database `postgres` names; `echo` shows progress (each batch with `every_batch`)."""
    if batch_size < 1:
        raise PortError("--batch-size must be at least 1")
    if postgres.name != "psycopg2":
        raise PortError(
            "The --postgres-config file's database section must name PostgreSQL "
            f"(name: psycopg2), not {postgres.name!r}: it says where the copy goes."
        )
    path = sqlite_path.expanduser()
    if not path.is_file():
        raise PortError(
            f"There is no SQLite database at {str(path)!r}: --sqlite-database must be the "
            "file the SQLite homeserver.yaml's database.args.database names."
        )
    started = time.monotonic()
    source = await open_database(
        DatabaseConfig(name="sqlite3", args={"database": str(path), "cp_min": 1, "cp_max": 1})
    )
    try:
        source_hold = await hold_exclusively(source)
        try:
            target = await open_database(postgres)
            try:
                target_hold = await hold_exclusively(target)
                try:
                    summary = await _port(source, target, batch_size, echo, every_batch)
                finally:
                    await target_hold.release()
            finally:
                await target.close()
        finally:
            await source_hold.release()
    finally:
        await source.close()
    summary.seconds = time.monotonic() - started
    return summary


async def _port(
    source: Database, target: Database, batch_size: int, echo: Echo, every_batch: bool
) -> PortSummary:
    revision = await _source_revision(source)
    info = await get_server_info(source)
    echo(f"From: {source.description}, schema revision {revision}")
    echo(f"To:   {target.description}")
    await _prepare_target(target, revision, echo)
    resumed = await _start_or_resume(target, source, info)
    if resumed:
        echo("Continuing an earlier port-db run of this database where it stopped.")
    summary = PortSummary(source.description, target.description, revision, resumed)
    nul_dropped: dict[str, int] = {}
    for table in ported_tables():
        nul_dropped[table.name] = await _copy_table(
            source, target, _TablePlan.of(table), batch_size, echo, every_batch
        )
    await _copy_search_index(source, target, batch_size, echo)
    summary.sequences_moved = await _move_sequences(source, target)
    echo("Verifying: row counts of every table, and its first and last rows...")
    summary.tables = await _verify(source, target, nul_dropped)
    async with target.transaction() as conn:
        await conn.run_sync(port_metadata.drop_all)
    return summary


async def _source_revision(source: Database) -> str:
    status = await schema_status(source)
    if status.current is None:
        raise PortError(
            f"{source.location} is not a Ranvier database (it records no schema revision). "
            "port-db copies Ranvier's own SQLite database; Synapse's cannot be ported with it."
        )
    if status.ahead_of_code:
        raise PortError(
            f"The SQLite database is at schema revision {status.current}, newer than this "
            f"Ranvier knows ({status.head}): run port-db with the Ranvier version that "
            "upgraded it."
        )
    if status.pending:
        raise PortError(
            f"The SQLite database is at schema revision {status.current}, older than this "
            f"Ranvier's {status.head}. Bring it up to date first, as the server would at "
            "start: `ranvier db upgrade -c <the homeserver.yaml that uses it>` (or start this "
            "Ranvier on it once), then run port-db again."
        )
    return status.current


def _table_names(connection: Connection) -> list[str]:
    return list(inspect(connection).get_table_names())


async def _prepare_target(target: Database, revision: str, echo: Echo) -> None:
    """Bring the PostgreSQL schema to the SQLite one's revision with the migrations."""
    status = await schema_status(target)
    if status.ahead_of_code:
        raise PortError(
            f"The PostgreSQL database is at schema revision {status.current}, which this "
            "Ranvier does not know: it is some other Ranvier's database. Point "
            "--postgres-config at a new, empty database."
        )
    if status.current is None:
        async with target.engine.connect() as conn:
            tables = await conn.run_sync(_table_names)
        if tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise PortError(
                f"The PostgreSQL database at {target.location} already has tables ({shown}) "
                "and is not a Ranvier database. Point --postgres-config at a new, empty "
                "database (CREATE DATABASE ... ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0)."
            )
    if status.current != revision:
        await upgrade(target, revision, echo)


async def _start_or_resume(target: Database, source: Database, info: ServerInfo | None) -> bool:
    """True when an earlier run's progress is there to continue; otherwise check that the
    target holds no data and record what is being copied."""
    server_name = info.server_name if info is not None else ""
    # a server started on the SQLite database stamps server_info: then rows already
    # copied may have changed since, and continuing would miss that
    last_started_ts = info.last_started_ts if info is not None else 0
    async with target.engine.connect() as conn:
        tables = set(await conn.run_sync(_table_names))
    if port_db_progress.name in tables and port_db_source.name in tables:
        async with target.read() as conn:
            row = (await conn.execute(select(port_db_source))).first()
        if row is not None and row.server_name != server_name:
            raise PortError(
                f"The PostgreSQL database holds an unfinished port of the server "
                f"{row.server_name!r} (from {row.sqlite_path}), but this SQLite database "
                f"belongs to {server_name!r}. Finish that port, or point --postgres-config "
                "at a new, empty database."
            )
        if row is not None and row.source_last_started_ts != last_started_ts:
            raise PortError(
                "A server has run on the SQLite database since this port began, so what was "
                "already copied may be out of date. Start over: drop and create the "
                "PostgreSQL database again, then run port-db with the server stopped."
            )
        return True
    holding = await _tables_with_rows(target)
    if holding:
        shown = ", ".join(holding[:8]) + (", ..." if len(holding) > 8 else "")
        raise PortError(
            f"The PostgreSQL database at {target.location} already holds Ranvier data (rows "
            f"in {shown}); port-db only fills an empty database, so nothing is overwritten. "
            "Drop and create the database again (a server started on it once has written "
            "to it), then run port-db."
        )
    async with target.transaction() as conn:
        await conn.run_sync(port_metadata.create_all)
        await conn.execute(
            insert(port_db_source).values(
                id=1,
                server_name=server_name,
                source_last_started_ts=last_started_ts,
                sqlite_path=source.location,
                started_ts=int(time.time() * 1000),
            )
        )
    return False


async def _tables_with_rows(db: Database) -> list[str]:
    names = [table.name for table in ported_tables()] + [SEARCH_TABLE]
    holding = []
    async with db.read() as conn:
        for name in names:
            if (await conn.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1'))).first():
                holding.append(name)
    return holding


@dataclass
class _Progress:
    last_key: list[Any] | None
    copied_rows: int
    done: bool


async def _progress_of(target: Database, name: str) -> _Progress:
    async with target.read() as conn:
        row = (
            await conn.execute(
                select(port_db_progress).where(port_db_progress.c.table_name == name)
            )
        ).first()
    if row is None:
        async with target.transaction() as conn:
            await conn.execute(
                insert(port_db_progress).values(
                    table_name=name, last_key=None, copied_rows=0, done=False
                )
            )
        return _Progress(None, 0, False)
    last_key = orjson.loads(row.last_key) if row.last_key is not None else None
    return _Progress(last_key, int(row.copied_rows), bool(row.done))


def _record(name: str, **values: Any) -> Any:
    return update(port_db_progress).where(port_db_progress.c.table_name == name).values(**values)


async def _count(db: Database, table: Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


class _Reporter:
    """Progress lines for one table: every batch, or every few seconds."""

    def __init__(self, echo: Echo, name: str, total: int, every_batch: bool) -> None:
        self._echo, self._name, self._total = echo, name, total
        self._every_batch = every_batch
        self._last = time.monotonic()

    def batch(self, copied: int) -> None:
        now = time.monotonic()
        if self._every_batch or now - self._last >= PROGRESS_INTERVAL_SECONDS:
            self._last = now
            self._echo(f"  {self._name}: {copied}/{self._total} rows")

    def done(self, copied: int) -> None:
        self._echo(f"  {self._name}: {copied}/{self._total} rows, done")


async def _copy_table(
    source: Database,
    target: Database,
    plan: _TablePlan,
    batch_size: int,
    echo: Echo,
    every_batch: bool,
) -> int:
    """Copy the rest of one table; how many NUL characters were dropped on the way."""
    name = plan.table.name
    progress = await _progress_of(target, name)
    if progress.done:
        return 0
    reporter = _Reporter(echo, name, await _count(source, plan.table), every_batch)
    last_key, copied, dropped = progress.last_key, progress.copied_rows, 0
    while True:
        async with source.read() as conn:
            rows = (await conn.execute(plan.select_batch(last_key, batch_size))).all()
        if not rows:
            break
        values = []
        for row in rows:
            converted, nuls = plan.convert(row)
            dropped += nuls
            for column in plan.self_references:
                converted[column.key] = None
            values.append(converted)
        last_key = plan.key_of(rows[-1])
        copied += len(rows)
        try:
            async with target.transaction() as conn:
                await conn.execute(insert(plan.table), values)
                await conn.execute(
                    _record(name, last_key=orjson.dumps(last_key).decode(), copied_rows=copied)
                )
        except DBAPIError as exc:
            raise PortError(
                f"PostgreSQL refused a row of {name} among those from the row with "
                f"{plan.describe_key(rows[0])} to the row with {plan.describe_key(rows[-1])}: "
                f"{exc.orig}. Nothing of this batch was written. Correct the row in the "
                "SQLite database, then run port-db again: it continues where it stopped."
            ) from exc
        reporter.batch(copied)
    await _fill_self_references(source, target, plan, batch_size)
    async with target.transaction() as conn:
        await conn.execute(_record(name, done=True))
    reporter.done(copied)
    return dropped


async def _fill_self_references(
    source: Database, target: Database, plan: _TablePlan, batch_size: int
) -> None:
    """Set the foreign keys a table's rows hold to its own rows, now that all are there
    (a row may name one copied after it). Setting a value twice is harmless, so a rerun
    after an interruption here simply does it again."""
    if not plan.self_references or not plan.key:
        return
    table = plan.table
    wanted = [*plan.key, *plan.self_references]
    after: list[Any] | None = None
    while True:
        query = select(*wanted).order_by(*plan.key).limit(batch_size)
        query = query.where(
            func.coalesce(*plan.self_references).is_not(None)
            if len(plan.self_references) > 1
            else plan.self_references[0].is_not(None)
        )
        if after is not None:
            query = query.where(
                tuple_(*plan.key) > tuple_(*after) if len(plan.key) > 1 else plan.key[0] > after[0]
            )
        async with source.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return
        async with target.transaction() as conn:
            for row in rows:
                mapping = row._mapping
                where = [column == mapping[column.name] for column in plan.key]
                values = {
                    column.key: _converter(column)(mapping[column.name])
                    if mapping[column.name] is not None
                    else None
                    for column in plan.self_references
                }
                await conn.execute(update(table).where(*where).values(**values))
        after = [rows[-1]._mapping[column.name] for column in plan.key]


async def _copy_search_index(
    source: Database, target: Database, batch_size: int, echo: Echo
) -> None:
    """The search index's entries, each indexed again by PostgreSQL's text search (the
    FTS5 table keeps the text it indexed; its rowid is the event's stream_ordering)."""
    progress = await _progress_of(target, SEARCH_TABLE)
    if progress.done:
        return
    last = progress.last_key[0] if progress.last_key else None
    copied = progress.copied_rows
    async with source.read() as conn:
        total = int((await conn.execute(text(f"SELECT count(*) FROM {SEARCH_TABLE}"))).scalar_one())
    reporter = _Reporter(echo, SEARCH_TABLE, total, False)
    while True:
        async with source.read() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT rowid, event_id, room_id, sender, key, value "
                        f"FROM {SEARCH_TABLE} WHERE rowid > :last ORDER BY rowid LIMIT :limit"
                    ),
                    {"last": last if last is not None else -(2**63), "limit": batch_size},
                )
            ).all()
        if not rows:
            break
        entries = [
            search.SearchEntry(
                event_id=row.event_id,
                room_id=row.room_id,
                sender=row.sender,
                key=row.key,
                value=str(row.value).replace("\x00", ""),
            )
            for row in rows
        ]
        last = int(rows[-1].rowid)
        copied += len(rows)
        async with target.transaction() as conn:
            await search.index_events(conn, entries)
            await conn.execute(
                _record(SEARCH_TABLE, last_key=orjson.dumps([last]).decode(), copied_rows=copied)
            )
        reporter.batch(copied)
    async with target.transaction() as conn:
        await conn.execute(_record(SEARCH_TABLE, done=True))
    reporter.done(copied)


async def _move_sequences(source: Database, target: Database) -> int:
    """Move every sequence behind a generated key (SERIAL or identity columns) past the
    highest key copied, and past what SQLite's AUTOINCREMENT has ever handed out (a key it
    will never reuse, even if its row is gone); returns how many were moved."""
    async with source.engine.connect() as conn:
        has_sequences = await conn.run_sync(lambda sync: inspect(sync).has_table("sqlite_sequence"))
        handed_out: dict[str, int] = {}
        if has_sequences:
            for name, seq in await conn.execute(text("SELECT name, seq FROM sqlite_sequence")):
                handed_out[str(name)] = int(seq)
    async with target.transaction() as conn:
        generated = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name, "
                    "pg_get_serial_sequence(quote_ident(table_name), column_name) "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
                )
            )
        ).all()
        moved = 0
        for table_name, column_name, sequence in generated:
            if sequence is None or table_name in port_metadata.tables:
                continue
            highest = (
                await conn.execute(text(f'SELECT max("{column_name}") FROM "{table_name}"'))
            ).scalar_one()
            floor = max(int(highest or 0), handed_out.get(str(table_name), 0))
            await conn.execute(
                text("SELECT setval(:sequence, :value, false)"),
                {"sequence": sequence, "value": floor + 1},
            )
            moved += 1
    return moved


async def _verify(
    source: Database, target: Database, nul_dropped: dict[str, int]
) -> list[TableReport]:
    reports = []
    mismatched = []
    for table in ported_tables():
        plan = _TablePlan.of(table)
        report = TableReport(
            table.name,
            await _count(source, table),
            await _count(target, table),
            nul_dropped.get(table.name, 0),
        )
        reports.append(report)
        if report.source_rows != report.target_rows:
            mismatched.append(
                f"{table.name}: {report.source_rows} in SQLite, {report.target_rows} in PostgreSQL"
            )
        elif plan.key and not await _samples_match(source, target, plan):
            mismatched.append(f"{table.name}: rows differ between SQLite and PostgreSQL")
    async with source.read() as conn:
        indexed = int(
            (
                await conn.execute(
                    text(
                        f"SELECT count(*) FROM {SEARCH_TABLE} WHERE rowid IN "
                        "(SELECT stream_ordering FROM events)"
                    )
                )
            ).scalar_one()
        )
    async with target.read() as conn:
        copied = int(
            (await conn.execute(text(f"SELECT count(*) FROM {SEARCH_TABLE}"))).scalar_one()
        )
    reports.append(TableReport(SEARCH_TABLE, indexed, copied))
    if indexed != copied:
        mismatched.append(f"{SEARCH_TABLE}: {indexed} in SQLite, {copied} in PostgreSQL")
    if mismatched:
        raise PortError(
            "The copy does not match the SQLite database:\n  "
            + "\n  ".join(mismatched)
            + "\nWas a server running on the SQLite database during the port? Drop and "
            "create the PostgreSQL database again, then run port-db with the server stopped."
        )
    return reports


async def _samples_match(source: Database, target: Database, plan: _TablePlan) -> bool:
    """Whether the first and last rows (in SQLite's key order) are in PostgreSQL as they
    are in SQLite, once converted. Rows are looked up by key: the two engines may sort
    text differently."""
    for descending in (False, True):
        order = [column.desc() if descending else column for column in plan.key]
        async with source.read() as conn:
            rows = (
                await conn.execute(select(plan.table).order_by(*order).limit(SAMPLE_ROWS))
            ).all()
        expected = {tuple(plan.key_of(row)): plan.convert(row)[0] for row in rows}
        if not expected:
            continue
        keys = [list(key) for key in expected]
        where = (
            plan.key[0].in_([key[0] for key in keys])
            if len(plan.key) == 1
            else tuple_(*plan.key).in_([tuple_(*key) for key in keys])
        )
        async with target.read() as conn:
            found = {
                tuple(plan.key_of(row)): dict(row._mapping)
                for row in (await conn.execute(select(plan.table).where(where))).all()
            }
        if found != expected:
            return False
    return True


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SEARCH_TABLE",
    "PortError",
    "PortSummary",
    "TableReport",
    "port_database",
    "ported_tables",
]
