"""A running server's hold on its database, so destructive commands can tell it is in use.

A server takes a *shared* hold for as long as it runs (several processes may share one
database); `ranvier db downgrade` takes the *exclusive* hold while it drops tables, and is
refused while any server holds the database. The operating system or PostgreSQL releases a
hold when its process dies, so a crashed server never leaves the database marked in use.

- PostgreSQL: an advisory lock, on a connection of its own (outside the pool, whose every
  connection is promised to requests). Advisory locks belong to the database, so a server on
  another machine sharing it is seen too.
- SQLite: flock(2) on a file beside the database (`<database>.lock`). Not the database file
  itself: on BSD and macOS flock and SQLite's own fcntl locks interact.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ranvier.storage.database import Database
from ranvier.storage.errors import StorageError

# pg_advisory_lock's two-key form: (classid, objid) = ("RANV", 1)
_LOCK_KEYS = "1380011606, 1"


class DatabaseInUse(StorageError):
    """Another process holds the database in a way that forbids what was asked."""


@dataclass
class DatabaseHold:
    """A held lock; `release` gives it back (closing the process does too)."""

    _fd: int | None = None
    _engine: AsyncEngine | None = None
    _conn: AsyncConnection | None = None

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            try:
                await self._conn.close()
            finally:
                self._conn = None
                assert self._engine is not None
                await self._engine.dispose()


def sqlite_lock_path(db: Database) -> Path | None:
    """The lock file of a SQLite database on disk (none in memory: nothing else can share
    it)."""
    if db.dialect != "sqlite" or db.location == "in memory":
        return None
    return Path(db.location + ".lock")


async def hold_for_server(db: Database) -> DatabaseHold:
    """The shared hold a running server keeps; refused while a downgrade runs."""
    return await _hold(db, exclusive=False)


async def hold_exclusively(db: Database) -> DatabaseHold:
    """The exclusive hold for a command that destroys data; refused while a server runs."""
    return await _hold(db, exclusive=True)


def _refusal(db: Database, exclusive: bool, holders: str = "") -> DatabaseInUse:
    if exclusive:
        return DatabaseInUse(
            f"A Ranvier server is using the database at {db.location}{holders}. "
            "Stop every server using it first (`ranvier stop -c homeserver.yaml`)."
        )
    return DatabaseInUse(
        f"The database at {db.location} is being downgraded (`ranvier db downgrade`); "
        "start the server once that has finished."
    )


async def _hold(db: Database, *, exclusive: bool) -> DatabaseHold:
    if db.dialect == "sqlite":
        path = sqlite_lock_path(db)
        if path is None:
            return DatabaseHold()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _refusal(db, exclusive) from None
        return DatabaseHold(_fd=fd)
    return await _hold_postgres(db, exclusive)


async def _hold_postgres(db: Database, exclusive: bool) -> DatabaseHold:
    # the pool's own settings and connect arguments (credentials, TLS), in a pool of its own
    pool: Any = db.engine.sync_engine.pool.recreate()
    engine = create_async_engine(db.engine.url, pool=pool)
    try:
        conn = await engine.connect()
        # outside any transaction: the lock lives as long as the session
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        function = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
        taken = (await conn.execute(text(f"SELECT {function}({_LOCK_KEYS})"))).scalar_one()
        if not taken:
            holders = await _postgres_holders(conn) if exclusive else ""
            await conn.close()
            raise _refusal(db, exclusive, holders)
    except BaseException:
        await engine.dispose()
        raise
    return DatabaseHold(_engine=engine, _conn=conn)


async def _postgres_holders(conn: AsyncConnection) -> str:
    """Where the servers holding the lock connect from, as far as this role may see."""
    rows = await conn.execute(
        text(
            "SELECT a.client_addr, a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = current_database() "
            "AND l.classid = 1380011606 AND l.objid = 1 AND l.objsubid = 2 AND l.granted"
        )
    )
    seen = sorted({str(addr) if addr is not None else "a local socket" for addr, _ in rows})
    return f" (connected from {', '.join(seen)})" if seen else ""
