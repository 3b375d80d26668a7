"""server_info: the one row saying which server the database belongs to.

A server_name is part of every user ID, room alias and event the server ever signed, so a
database cannot change owner; start-up refuses a configuration whose server_name differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import BigInteger, CheckConstraint, Column, Integer, Table, Text, insert, select
from sqlalchemy import update as sql_update

from ranvier.storage.database import Database
from ranvier.storage.errors import StorageStartupError
from ranvier.storage.metadata import metadata

server_info = Table(
    "server_info",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("server_name", Text, nullable=False),
    Column("created_by_version", Text, nullable=False),
    Column("last_started_version", Text, nullable=False),
    Column("last_started_ts", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)


@dataclass(frozen=True)
class ServerInfo:
    server_name: str
    created_by_version: str
    last_started_version: str
    last_started_ts: int  # ms since the epoch


async def get_server_info(db: Database) -> ServerInfo | None:
    async with db.read() as conn:
        row = (await conn.execute(select(server_info).where(server_info.c.id == 1))).first()
    if row is None:
        return None
    return ServerInfo(
        server_name=row.server_name,
        created_by_version=row.created_by_version,
        last_started_version=row.last_started_version,
        last_started_ts=row.last_started_ts,
    )


async def record_server_start(db: Database, server_name: str, version: str) -> None:
    """Claim the database for `server_name` on first start; afterwards refuse any other name
    and record which Ranvier version last started."""
    now_ms = int(time.time() * 1000)
    async with db.transaction() as conn:
        row = (
            await conn.execute(select(server_info.c.server_name).where(server_info.c.id == 1))
        ).first()
        if row is None:
            await conn.execute(
                insert(server_info).values(
                    id=1,
                    server_name=server_name,
                    created_by_version=version,
                    last_started_version=version,
                    last_started_ts=now_ms,
                )
            )
            return
        if row.server_name != server_name:
            raise StorageStartupError(
                f"This database belongs to the server {row.server_name!r}, but the "
                f"configuration says server_name: {server_name}. A server's name cannot "
                "change once it has users and rooms, because it is part of every user ID and "
                f"room ID. Set server_name back to {row.server_name}, or point the database "
                f"section at a new, empty database for {server_name}."
            )
        await conn.execute(
            sql_update(server_info)
            .where(server_info.c.id == 1)
            .values(last_started_version=version, last_started_ts=now_ms)
        )
