"""room_aliases: the local aliases (#name:server) and the rooms they point at."""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

room_aliases = Table(
    "room_aliases",
    metadata,
    Column("room_alias", Text, primary_key=True),
    Column("room_id", Text, nullable=False),
    Column("creator", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
)


class AliasInUse(Exception):
    pass


async def insert_alias(conn: AsyncConnection, alias: str, room_id: str, creator: str) -> None:
    """Raises AliasInUse if the alias exists; the caller's transaction is then unusable."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(room_aliases).values(
                    room_alias=alias,
                    room_id=room_id,
                    creator=creator,
                    created_ts=int(time.time() * 1000),
                )
            )
    except IntegrityError:
        raise AliasInUse(alias) from None


async def get_alias(db: Database, alias: str) -> str | None:
    """The room ID the alias points at."""
    query = select(room_aliases.c.room_id).where(room_aliases.c.room_alias == alias)
    async with db.read() as conn:
        value = (await conn.execute(query)).scalar()
    return str(value) if value is not None else None
