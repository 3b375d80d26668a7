"""Synapse's database, opened read-only for `ranvier import-synapse`, and the checks that it
is one this Ranvier knows how to read.

The connection cannot write: SQLite is opened with `mode=ro`, PostgreSQL sessions start with
`default_transaction_read_only`. An import never changes the Synapse it reads, so the admin
can go back to it whatever happens. (A read-only SQLite reader of a WAL database still
leaves the empty `-wal` and `-shm` files beside it, which Synapse uses as they are.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ranvier.storage.errors import StorageError

# Synapse's SCHEMA_VERSION in the releases whose tables the import reads (1.163's is 94).
# A database of another version has other columns: refused rather than half-read.
SUPPORTED_SCHEMA_VERSIONS = frozenset({94})
SUPPORTED_SYNAPSE = "Synapse 1.163 (database schema version 94)"


class SynapseImportError(StorageError):
    """The import cannot go on; the message says why and what to do."""


class SynapseDatabase:
    """Read-only queries on Synapse's database."""

    def __init__(self, engine: AsyncEngine, location: str) -> None:
        self.engine = engine
        self.location = location

    async def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> Sequence[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql), dict(params or {}))
            return result.fetchall()

    async def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.rows(sql, params)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        await self.engine.dispose()


def open_synapse_database(section: Mapping[str, Any]) -> SynapseDatabase:
    """The database Synapse's `database` section names (sqlite3 or psycopg2)."""
    name = section.get("name", "sqlite3")
    args = section.get("args") or {}
    if not isinstance(args, Mapping):
        raise SynapseImportError("Synapse's database.args must be a mapping")
    if name == "sqlite3":
        path = args.get("database")
        if not isinstance(path, str) or not Path(path).expanduser().is_file():
            raise SynapseImportError(
                f"Synapse's SQLite database {path!r} (its database.args.database) does not "
                "exist; run the import on the machine that holds it, with the path Synapse uses."
            )
        file = Path(path).expanduser().resolve()
        # a URI, so that SQLite itself refuses every write
        engine = create_async_engine(
            f"sqlite+aiosqlite:///file:{quote(str(file))}?mode=ro&uri=true"
        )
        return SynapseDatabase(engine, str(file))
    if name in ("psycopg2", "psycopg"):
        dbname = args.get("database", args.get("dbname"))
        if not dbname:
            raise SynapseImportError("Synapse's database.args must name its PostgreSQL database")
        port = args.get("port")
        url = URL.create(
            "postgresql+asyncpg",
            username=args.get("user"),
            password=args.get("password"),
            host=args.get("host"),
            port=int(port) if port is not None else None,
            database=str(dbname),
        )
        engine = create_async_engine(
            url, connect_args={"server_settings": {"default_transaction_read_only": "on"}}
        )
        location = f"{args.get('host') or 'local socket'}:{port or 5432}/{dbname}"
        return SynapseDatabase(engine, location)
    raise SynapseImportError(
        f"Synapse's database.name is {name!r}; the import reads sqlite3 or psycopg2 databases."
    )


async def check_schema(source: SynapseDatabase) -> int:
    """Synapse's schema version, refused unless it is one the import reads."""
    try:
        version = await source.scalar("SELECT version FROM schema_version")
        newest_delta = await source.scalar("SELECT max(version) FROM applied_schema_deltas")
    except Exception as exc:
        raise SynapseImportError(
            f"Cannot read Synapse's schema version from {source.location}: {exc}. Is this "
            "Synapse's database, and can it be reached?"
        ) from None
    if version is None:
        raise SynapseImportError(f"{source.location} has no Synapse schema version: not Synapse's")
    version = int(version)
    if newest_delta is not None and int(newest_delta) > version:
        version = int(newest_delta)
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise SynapseImportError(
            f"Synapse's database is at schema version {version}; this Ranvier imports "
            f"{SUPPORTED_SYNAPSE}. Upgrade (or downgrade) Synapse to 1.163, start and stop it "
            "once so it updates its database, then run the import again."
        )
    return version
