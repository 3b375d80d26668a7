"""room_aliases: the local aliases (#name:server) and the rooms they point at."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.clock import now_ms
from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

room_aliases = Table(
    "room_aliases",
    metadata,
    Column("room_alias", Text, primary_key=True),
    Column("room_id", Text, nullable=False),
    Column("creator", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Index("ix_room_aliases_room", "room_id"),
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
                    created_ts=now_ms(),
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


@dataclass(frozen=True)
class AliasRecord:
    room_alias: str
    room_id: str
    creator: str


async def create_alias(db: Database, alias: str, room_id: str, creator: str) -> None:
    """Raises AliasInUse if the alias exists."""
    async with db.transaction() as conn:
        await insert_alias(conn, alias, room_id, creator)


async def get_alias_record(db: Database, alias: str) -> AliasRecord | None:
    query = select(room_aliases).where(room_aliases.c.room_alias == alias)
    async with db.read() as conn:
        row = (await conn.execute(query)).first()
    return AliasRecord(row.room_alias, row.room_id, row.creator) if row is not None else None


async def delete_alias(db: Database, alias: str) -> str | None:
    """Remove the alias; returns the room it pointed at, or None if it did not exist."""
    # no RETURNING: the oldest SQLite supported (3.27) lacks it
    where = room_aliases.c.room_alias == alias
    async with db.transaction() as conn:
        value = (await conn.execute(select(room_aliases.c.room_id).where(where))).scalar()
        if value is None:
            return None
        await conn.execute(delete(room_aliases).where(where))
    return str(value)


async def get_aliases_for_room(db: Database, room_id: str) -> list[str]:
    """The local aliases pointing at the room, oldest first."""
    query = (
        select(room_aliases.c.room_alias)
        .where(room_aliases.c.room_id == room_id)
        .order_by(room_aliases.c.created_ts, room_aliases.c.room_alias)
    )
    async with db.read() as conn:
        return [str(value) for value in (await conn.execute(query)).scalars()]


async def move_aliases(conn: AsyncConnection, old_room_id: str, new_room_id: str) -> None:
    """Point every local alias of the old room at the new one (room upgrades)."""
    await conn.execute(
        update(room_aliases)
        .where(room_aliases.c.room_id == old_room_id)
        .values(room_id=new_room_id)
    )
