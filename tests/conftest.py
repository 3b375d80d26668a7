"""Fixtures shared by every test package.

`database_config` gives each test a fresh, empty database, once on SQLite and once on
PostgreSQL; `database` gives one already opened and migrated to head. PostgreSQL comes from
RANVIER_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres); when it cannot
be reached the PostgreSQL variants are skipped, except under CI=true where they fail. To make
other databases (the integration server fixture does), use `ranvier.storage.testing`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import Database
from ranvier.storage.schema import prepare_database
from ranvier.storage.testing import (
    PostgresUnavailable,
    create_postgres_database,
    drop_postgres_database,
    postgres_database_config,
    postgres_server_url,
    sqlite_database_config,
)

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI, where PostgreSQL must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so PostgreSQL tests must run)")
    pytest.skip(reason)


async def new_database_config(engine: str, tmp_path: Path) -> AsyncIterator[DatabaseConfig]:
    """A fresh empty database on `engine` ("sqlite" or "postgres"), removed afterwards."""
    if engine == "sqlite":
        yield sqlite_database_config(tmp_path / "homeserver.db")
        return
    server_url = postgres_server_url()
    try:
        name = await create_postgres_database(server_url)
    except PostgresUnavailable as exc:
        postgres_unavailable(str(exc))
        return
    try:
        yield postgres_database_config(name, server_url)
    finally:
        await drop_postgres_database(name, server_url)


@pytest.fixture(params=ENGINES)
async def database_config(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DatabaseConfig]:
    async for config in new_database_config(request.param, tmp_path):
        yield config


@pytest.fixture
async def database(database_config: DatabaseConfig) -> AsyncIterator[Database]:
    db = await prepare_database(database_config)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def postgres_server() -> str:
    """The URL of the test PostgreSQL server, for tests that make their own databases."""
    import asyncpg

    url = postgres_server_url()
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        postgres_unavailable(f"PostgreSQL at {url} is unreachable: {exc}")
    else:
        await conn.close()
    return url
