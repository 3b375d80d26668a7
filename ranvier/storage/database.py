"""The database handle: one SQLAlchemy async engine over SQLite (sqlite3 driven on the event
loop, see sqlite_driver.py) or PostgreSQL (asyncpg), opened from the `database` section of
homeserver.yaml, with the start-up checks.

Stores get a `Database` and use `transaction()` for anything that writes and `read()` for
reads; neither they nor the services above them need to know which engine is underneath.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool

from ranvier.config.errors import unwritable_path
from ranvier.config.models import DatabaseConfig
from ranvier.metrics.database import transaction_timer
from ranvier.storage.checks import (
    check_postgres_locale,
    check_postgres_version,
    check_sqlite_version,
)
from ranvier.storage.errors import DatabaseUnavailable, StorageStartupError
from ranvier.storage.sqlite_driver import InLoopConnection, connector

logger = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]

# Synapse's defaults for its connection pool (twisted adbapi's cp_min/cp_max).
DEFAULT_CP_MIN = 5
DEFAULT_CP_MAX = 10
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long a request waits its turn for a connection before it is refused (503): long
# enough to ride out a burst (a thousand long-polls woken by one message queue for a few
# seconds on two connections), short enough that the client is still listening.
CONNECTION_WAIT_SECONDS = 60.0
# what a refused request is told to wait before trying again
RETRY_AFTER_SECONDS = 5
# /health: a database that answered this recently needs no probe; a probe gets this long
HEALTHY_IF_ANSWERED_WITHIN_SECONDS = 1.0
HEALTH_PROBE_TIMEOUT_SECONDS = 2.0

_POOL_ARGS = {"cp_min", "cp_max", "cp_reconnect", "cp_openfun", "cp_noisy"}
# Twisted's pool options with no counterpart here (a lost connection is always replaced),
# and the sqlite3 module's thread check, which the in-loop driver makes moot
_NO_EFFECT_ARGS = {"cp_reconnect", "cp_openfun", "cp_noisy", "check_same_thread"}
_SQLITE_ARGS = _POOL_ARGS | {"database", "check_same_thread"}
# psycopg2 options that asyncpg has no equivalent for and that only tune the TCP connection.
_IGNORED_POSTGRES_ARGS = {
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
}
_POSTGRES_ARGS = (
    _POOL_ARGS
    | _IGNORED_POSTGRES_ARGS
    | {
        "user",
        "password",
        "database",
        "dbname",
        "host",
        "port",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "application_name",
        "connect_timeout",
    }
)
_READ_ONLY = "ranvier_read_only"
_SQLITE_SETTING = "database.args.database"
# what SQLite says when it cannot write, as the OSError it stands for
_SQLITE_WRITE_FAILURES = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EACCES,
    "unable to open database file": errno.EACCES,
}


@dataclass
class Database:
    """An open database: the engine plus what start-up learned about the server."""

    engine: AsyncEngine
    dialect: Dialect
    # e.g. (3, 45, 1) for SQLite, (16, 2) for PostgreSQL
    server_version: tuple[int, ...]
    # where the data lives, for messages: a file path or host:port/dbname
    location: str
    warnings: list[str] = field(default_factory=list)
    # database.args.cp_max: connections in use at once, never more
    max_connections: int = DEFAULT_CP_MAX
    connection_wait_seconds: float = CONNECTION_WAIT_SECONDS
    # SQLite has one writer; its driver runs on the event loop (storage/sqlite_driver.py),
    # where waiting for the file's write lock would block the holder too, so writers queue
    # here instead
    _sqlite_writer: asyncio.Lock | None = None

    def __post_init__(self) -> None:
        if self.dialect == "sqlite":
            self._sqlite_writer = asyncio.Lock()
        # The queue for connections, in front of SQLAlchemy's pool: first come, first
        # served (the pool's own wait lets a task that just gave a connection back take it
        # again ahead of those waiting), with a deadline that answers 503, not 500.
        self._turns = asyncio.Semaphore(self.max_connections)
        self._last_answered = 0.0
        self._health_probe: asyncio.Task[bool] | None = None

    @property
    def description(self) -> str:
        name = "SQLite" if self.dialect == "sqlite" else "PostgreSQL"
        version = ".".join(str(part) for part in self.server_version)
        return f"{name} {version} ({self.location})"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed when the block exits cleanly."""
        # named after the store method that asked: two frames up, past contextlib
        timer = transaction_timer(2)
        if self._sqlite_writer is None:
            try:
                async with self._turn(), self._connection(self.engine.begin) as conn:
                    timer.connected()
                    yield conn
            finally:
                timer.finished()
            return
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can lose a cancellation
        # that arrives as the lock is granted, and the cancelled task then runs on
        try:
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                await self._sqlite_writer.acquire()
        except TimeoutError:
            # what SQLite itself would answer once its busy timeout ran out
            raise DatabaseUnavailable(
                "Gave up waiting for SQLite's write lock (database is locked)",
                RETRY_AFTER_SECONDS,
            ) from None
        try:
            async with self._turn(), self._connection(self.engine.begin) as conn:
                timer.connected()
                yield conn
        finally:
            self._sqlite_writer.release()
            timer.finished()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction that is only read from (never blocks writers on
        SQLite); rolled back at the end. On PostgreSQL there is no transaction at all: at
        READ COMMITTED each statement sees its own snapshot either way, and BEGIN and
        ROLLBACK would be two more round trips per read."""
        timer = transaction_timer(2)
        try:
            async with self._turn(), self._connection(self.engine.connect) as conn:
                timer.connected()
                options: dict[str, Any] = {_READ_ONLY: True}
                if self.dialect == "postgresql":
                    options["isolation_level"] = "AUTOCOMMIT"
                conn = await conn.execution_options(**options)
                async with conn.begin() as txn:
                    yield conn
                    await txn.rollback()
        finally:
            timer.finished()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait, in order of arrival, until one of the max_connections is free."""
        if self._turns.locked():
            try:
                async with asyncio.timeout(self.connection_wait_seconds):
                    await self._turns.acquire()
            except TimeoutError:
                raise DatabaseUnavailable(
                    f"No database connection came free in {self.connection_wait_seconds:g}s "
                    f"(all {self.max_connections} in use: database.args.cp_max)",
                    RETRY_AFTER_SECONDS,
                ) from None
        else:
            await self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()

    @asynccontextmanager
    async def _connection(
        self, open_connection: Callable[[], AbstractAsyncContextManager[AsyncConnection]]
    ) -> AsyncIterator[AsyncConnection]:
        """A connection from `open_connection` (the engine's connect or begin). Failing to
        get one, or losing it midway, means the database is out of reach: that is a 503
        the client may retry, not an error in the request."""
        opened = False
        try:
            async with open_connection() as conn:
                opened = True
                yield conn
        except DBAPIError as exc:
            if opened and not exc.connection_invalidated:
                raise
            raise self._unreachable(exc) from exc
        except (OSError, TimeoutError) as exc:
            if opened:
                raise
            raise self._unreachable(exc) from exc
        self._last_answered = time.monotonic()

    def _unreachable(self, exc: BaseException) -> DatabaseUnavailable:
        logger.warning("The database at %s is out of reach: %s", self.location, exc)
        return DatabaseUnavailable(
            f"The database at {self.location} is out of reach", RETRY_AFTER_SECONDS
        )

    async def reachable(self) -> bool:
        """Whether the database answers (for /health): yes if a request got an answer from
        it within the last second, otherwise after a `SELECT 1` bounded by a short timeout.
        Concurrent callers share one probe, so frequent polling costs little."""
        if time.monotonic() - self._last_answered < HEALTHY_IF_ANSWERED_WITHIN_SECONDS:
            return True
        if self._health_probe is None:
            self._health_probe = asyncio.create_task(self._probe())
            self._health_probe.add_done_callback(self._probe_done)
        return await asyncio.shield(self._health_probe)

    def _probe_done(self, _task: asyncio.Task[bool]) -> None:
        self._health_probe = None

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(HEALTH_PROBE_TIMEOUT_SECONDS), self.read() as conn:
                await conn.execute(text("SELECT 1"))
        except DatabaseUnavailable:
            # already logged, with the reason
            return False
        except Exception as exc:
            logger.warning("The database at %s does not answer: %r", self.location, exc)
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


def insert_for(conn: AsyncConnection) -> Callable[..., Any]:
    """The engine's own INSERT, which has ON CONFLICT DO UPDATE / DO NOTHING (both engines
    spell it alike; SQLAlchemy's generic insert has neither)."""
    return postgres_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _pool_bounds(args: dict[str, Any]) -> tuple[int, int]:
    try:
        cp_min = int(args.get("cp_min", DEFAULT_CP_MIN))
        cp_max = int(args.get("cp_max", DEFAULT_CP_MAX))
    except (TypeError, ValueError) as exc:
        raise StorageStartupError(
            "database.args.cp_min and cp_max must be whole numbers of connections"
        ) from exc
    if cp_max < 1 or cp_min < 0 or cp_min > cp_max:
        raise StorageStartupError(
            f"database.args has cp_min={cp_min} and cp_max={cp_max}: cp_max must be at least 1 "
            "and cp_min must not be more than cp_max"
        )
    return cp_min, cp_max


def _refuse_unknown_args(args: dict[str, Any], known: set[str], engine: str) -> None:
    unknown = sorted(set(args) - known)
    if unknown:
        raise StorageStartupError(
            f"database.args has option(s) Ranvier does not understand for {engine}: "
            f"{', '.join(unknown)}. Supported: {', '.join(sorted(known))}."
        )


def _list_args_without_effect(args: dict[str, Any], no_effect: set[str]) -> None:
    for name in sorted(no_effect & set(args)):
        logger.info("database.args.%s has no effect with Ranvier", name)


def _sqlite_engine(config: DatabaseConfig, cp_max: int) -> tuple[AsyncEngine, str]:
    args = config.args
    _refuse_unknown_args(args, _SQLITE_ARGS, "sqlite3")
    _list_args_without_effect(args, _NO_EFFECT_ARGS)
    path = args.get("database")
    if not isinstance(path, str) or not path:
        raise StorageStartupError(
            "database.args.database must be the path of the SQLite file, "
            "e.g. database: /var/lib/ranvier/homeserver.db"
        )
    if path == ":memory:":
        # every connection to :memory: would be its own empty database; share one
        engine = create_async_engine(
            "sqlite+aiosqlite://", poolclass=StaticPool, async_creator=connector(":memory:")
        )
        location = "in memory"
    else:
        file = Path(path).expanduser()
        if not file.parent.is_dir():
            raise StorageStartupError(
                f"The directory of the SQLite database {str(file)!r} does not exist; "
                "create it or change database.args.database"
            )
        _check_sqlite_writable(file)
        engine = create_async_engine(
            URL.create("sqlite+aiosqlite", database=str(file)),
            async_creator=connector(str(file)),
            poolclass=AsyncAdaptedQueuePool,
            pool_size=cp_max,
            max_overflow=0,
            # Database queues for connections itself; this only bounds start-up's own use
            pool_timeout=CONNECTION_WAIT_SECONDS,
        )
        location = str(file)

    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions out of the sqlite3 module's hands so that BEGIN is ours (below),
        # which makes DDL transactional and lets SAVEPOINT work.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes fails with SQLITE_BUSY at once (busy_timeout cannot help) if another
        # writer got in between.
        statement = "BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE"
        driver = conn.connection.driver_connection
        if isinstance(driver, InLoopConnection):
            # straight to sqlite3: SQLAlchemy's statement machinery costs more than BEGIN
            driver.begin(statement)
        else:
            conn.exec_driver_sql(statement)

    return engine, location


def _check_sqlite_writable(file: Path) -> None:
    """Refuse now, naming the path and the fix, what SQLite would refuse later in its own
    words ("unable to open database file"): in WAL mode it writes the file and two more
    beside it (-wal, -shm), so the directory must take new files, and the disk some bytes."""
    try:
        with tempfile.NamedTemporaryFile(dir=file.parent, prefix=".ranvier-write-check-") as probe:
            probe.write(bytes(4096))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise StorageStartupError(
            unwritable_path("the SQLite database's directory", file.parent, exc, _SQLITE_SETTING)
        ) from exc
    if file.exists():
        try:
            # opened for writing, not written: refuses a read-only file
            with open(file, "r+b"):
                pass
        except OSError as exc:
            raise StorageStartupError(
                unwritable_path("the SQLite database", file, exc, _SQLITE_SETTING)
            ) from exc


def sqlite_startup_problem(exc: BaseException, config: DatabaseConfig) -> str | None:
    """The admin's version of an SQLite error that stopped start-up because the file could
    not be written (a full disk during migrations, say); None for any other error."""
    path = config.args.get("database")
    if config.name != "sqlite3" or not isinstance(path, str) or path == ":memory:":
        return None
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, sqlite3.Error):
            code = _SQLITE_WRITE_FAILURES.get(str(cause))
            if code is not None:
                error = OSError(code, os.strerror(code))
                return unwritable_path("the SQLite database", path, error, _SQLITE_SETTING)
        cause = cause.__cause__ or cause.__context__
    return None


def _postgres_ssl(args: dict[str, Any]) -> ssl.SSLContext | str | None:
    mode = args.get("sslmode")
    rootcert, cert, key = args.get("sslrootcert"), args.get("sslcert"), args.get("sslkey")
    if mode is None and rootcert is None and cert is None:
        return None
    if mode in ("disable", "allow", "prefer", "require") and rootcert is None and cert is None:
        return str(mode)
    context = ssl.create_default_context(cafile=rootcert)
    if mode in ("require", "prefer", "allow") and rootcert is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(cert, keyfile=key)
    return context


def _postgres_engine(config: DatabaseConfig, cp_max: int) -> tuple[AsyncEngine, str, str]:
    args = config.args
    _refuse_unknown_args(args, _POSTGRES_ARGS, "psycopg2 (PostgreSQL)")
    _list_args_without_effect(args, _IGNORED_POSTGRES_ARGS | _NO_EFFECT_ARGS)
    dbname = args.get("database", args.get("dbname"))
    if not dbname:
        raise StorageStartupError(
            "database.args.database must name the PostgreSQL database, e.g. database: ranvier"
        )
    port = args.get("port")
    url = URL.create(
        "postgresql+asyncpg",
        username=args.get("user"),
        password=args.get("password"),
        host=args.get("host"),
        port=int(port) if port is not None else None,
        database=str(dbname),
    )
    connect_args: dict[str, Any] = {}
    ssl_arg = _postgres_ssl(args)
    if ssl_arg is not None:
        connect_args["ssl"] = ssl_arg
    if "application_name" in args:
        connect_args["server_settings"] = {"application_name": str(args["application_name"])}
    if "connect_timeout" in args:
        connect_args["timeout"] = float(args["connect_timeout"])
    engine = create_async_engine(
        url,
        # cp_max is the cap Synapse admins set: every connection opened is kept (cp_min of
        # them from start-up, see open_database), never more than cp_max
        pool_size=cp_max,
        max_overflow=0,
        # Database queues for connections itself; this only bounds start-up's own use
        pool_timeout=CONNECTION_WAIT_SECONDS,
        # no ping before every use (a round trip each time): a connection that died with
        # the server fails its one request, and SQLAlchemy then replaces the whole pool
        connect_args=connect_args,
    )
    location = f"{args.get('host') or 'local socket'}:{port or 5432}/{dbname}"
    return engine, location, str(dbname)


async def _check_sqlite(engine: AsyncEngine) -> tuple[int, ...]:
    async with engine.connect() as conn:
        version = str((await conn.execute(text("SELECT sqlite_version()"))).scalar_one())
    version_tuple = tuple(int(part) for part in version.split("."))
    check_sqlite_version(version_tuple)
    return version_tuple


async def _check_postgres(
    engine: AsyncEngine, dbname: str, allow_unsafe_locale: bool
) -> tuple[tuple[int, ...], list[str]]:
    async with engine.connect() as conn:
        version_num = int((await conn.execute(text("SHOW server_version_num"))).scalar_one())
        row = (
            await conn.execute(
                text(
                    "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
                    "FROM pg_database WHERE datname = current_database()"
                )
            )
        ).one()
    check_postgres_version(version_num)
    warning = check_postgres_locale(
        dbname,
        encoding=str(row[0]),
        collate=str(row[1]),
        ctype=str(row[2]),
        allow_unsafe_locale=allow_unsafe_locale,
    )
    warnings = []
    if warning is not None:
        logger.warning("%s", warning)
        warnings.append(warning)
    return (version_num // 10000, version_num % 10000), warnings


async def open_database(config: DatabaseConfig) -> Database:
    """Open the configured database and run the start-up checks on it (but not migrations;
    see `prepare_database` for what server start-up does)."""
    cp_min, cp_max = _pool_bounds(config.args)
    if config.name == "sqlite3":
        # the library aiosqlite will load; refuse before touching the file
        check_sqlite_version(sqlite3.sqlite_version_info)
        engine, location = _sqlite_engine(config, cp_max)
        try:
            version = await _check_sqlite(engine)
            await _open_connections(engine, cp_min)
        except BaseException:
            await engine.dispose()
            raise
        return Database(engine, "sqlite", version, location, max_connections=cp_max)

    engine, location, dbname = _postgres_engine(config, cp_max)
    try:
        version, warnings = await _check_postgres(engine, dbname, config.allow_unsafe_locale)
        await _open_connections(engine, cp_min)
    except StorageStartupError:
        await engine.dispose()
        raise
    except Exception as exc:
        await engine.dispose()
        raise StorageStartupError(
            f"Cannot connect to PostgreSQL at {location}: {exc}. Check that the server is "
            "running and that database.args (host, port, user, password, database) are right."
        ) from exc
    return Database(engine, "postgresql", version, location, warnings, max_connections=cp_max)


async def _open_connections(engine: AsyncEngine, count: int) -> None:
    """database.args.cp_min: open that many connections now, so the first requests do not
    wait for them; the pool keeps every connection it opens."""
    opened = [await engine.connect() for _ in range(count)]
    for conn in opened:
        await conn.close()
