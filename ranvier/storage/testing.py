"""Throw-away databases for tests (here because SQL, even CREATE DATABASE, lives in storage).

The PostgreSQL server comes from the environment variable RANVIER_TEST_POSTGRES, a
libpq-style URL of a role allowed to create databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import asyncpg

from ranvier.config.models import DatabaseConfig

DEFAULT_TEST_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresUnavailable(Exception):
    """The test PostgreSQL server could not be reached."""


def postgres_server_url() -> str:
    return os.environ.get("RANVIER_TEST_POSTGRES") or DEFAULT_TEST_POSTGRES


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _connect(server_url: str) -> Any:
    try:
        return await asyncpg.connect(server_url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise PostgresUnavailable(f"PostgreSQL at {server_url} is unreachable: {exc}") from exc


async def create_postgres_database(
    server_url: str | None = None,
    *,
    name: str | None = None,
    collate: str = "C",
    ctype: str = "C",
) -> str:
    """Create an empty database (C locale unless told otherwise) and return its name."""
    server_url = server_url or postgres_server_url()
    name = name or f"ranvier_test_{uuid.uuid4().hex[:16]}"
    conn = await _connect(server_url)
    try:
        await conn.execute(
            f"CREATE DATABASE {_quote(name)} ENCODING 'UTF8' TEMPLATE template0 "
            f"LC_COLLATE '{collate}' LC_CTYPE '{ctype}'"
        )
    finally:
        await conn.close()
    return name


async def drop_postgres_database(name: str, server_url: str | None = None) -> None:
    """Drop the database, disconnecting anything still connected to it."""
    conn = await _connect(server_url or postgres_server_url())
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)}")
    finally:
        await conn.close()


def postgres_database_config(
    name: str, server_url: str | None = None, *, allow_unsafe_locale: bool = False
) -> DatabaseConfig:
    """The `database` section (Synapse's psycopg2 form) for database `name` on the server."""
    url = urlparse(server_url or postgres_server_url())
    args: dict[str, Any] = {"database": name, "cp_min": 1, "cp_max": 5}
    if url.username:
        args["user"] = unquote(url.username)
    if url.password:
        args["password"] = unquote(url.password)
    if url.hostname:
        args["host"] = url.hostname
    if url.port:
        args["port"] = url.port
    return DatabaseConfig(name="psycopg2", args=args, allow_unsafe_locale=allow_unsafe_locale)


def sqlite_database_config(path: Path | str) -> DatabaseConfig:
    return DatabaseConfig(name="sqlite3", args={"database": str(path)})


@asynccontextmanager
async def temporary_postgres_database(
    server_url: str | None = None,
    *,
    collate: str = "C",
    ctype: str = "C",
    allow_unsafe_locale: bool = False,
) -> AsyncIterator[DatabaseConfig]:
    """A fresh database for the duration of the block, dropped afterwards."""
    server_url = server_url or postgres_server_url()
    name = await create_postgres_database(server_url, collate=collate, ctype=ctype)
    try:
        yield postgres_database_config(name, server_url, allow_unsafe_locale=allow_unsafe_locale)
    finally:
        await drop_postgres_database(name, server_url)
