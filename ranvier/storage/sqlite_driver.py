"""SQLite for SQLAlchemy's asyncio engine, run on the event loop's own thread.

aiosqlite hands every call (each execute, fetch, commit and rollback) to a thread of its
own and back, so one small transaction costs a dozen thread hops; on a busy two-core
machine each hop waits for the scheduler and a send spent most of its time there. A SQLite
statement on an indexed table takes microseconds, less than one hop, so here the driver
calls the `sqlite3` module directly: the coroutines SQLAlchemy awaits never suspend.

The price is that a statement holds the loop while it runs, and that a connection waiting
for SQLite's write lock would block the loop that must release it. `Database` therefore
lets one write transaction at a time into SQLite (it has one writer anyway) and readers,
in WAL mode, never wait. The objects below mimic the small part of aiosqlite's API that
SQLAlchemy's aiosqlite dialect uses.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class InLoopCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InLoopCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InLoopCursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InLoopCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _NewCursor:
    """What `connection.cursor()` returns in aiosqlite: entered to get the cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InLoopCursor:
        return InLoopCursor(self._cursor)

    async def __aexit__(self, *exc_info: object) -> None:
        self._cursor.close()


class _RunNow:
    """SQLAlchemy sets isolation_level through aiosqlite's private call queue; run the call
    at once instead."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InLoopConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        # the names SQLAlchemy's adapter reaches for on an aiosqlite connection
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _NewCursor:
        return _NewCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InLoopCursor:
        return InLoopCursor(self._conn.execute(sql, () if parameters is None else parameters))

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    def begin(self, statement: str) -> None:
        """BEGIN or BEGIN IMMEDIATE, run at once: called from SQLAlchemy's begin event."""
        self._conn.execute(statement)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def connector(path: str) -> Callable[[], Any]:
    """The `async_creator` for create_async_engine: a new connection to `path`."""

    async def connect() -> InLoopConnection:
        # connections are opened and used on the loop's thread, but the pool may close a
        # dead one from a finaliser elsewhere
        return InLoopConnection(sqlite3.connect(path, check_same_thread=False))

    return connect
