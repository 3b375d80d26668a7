"""rooms: one row per room this server knows, with its version (which fixes every algorithm)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Table,
    Text,
    and_,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata
from ranvier.storage.state import current_state_events

rooms = Table(
    "rooms",
    metadata,
    Column("room_id", Text, primary_key=True),
    Column("room_version", Text, nullable=False),
    Column("creator", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("is_public", Boolean, nullable=False, server_default=false()),
)


@dataclass(frozen=True)
class RoomRecord:
    room_id: str
    room_version: str
    creator: str
    created_ts: int
    is_public: bool


async def insert_room(
    conn: AsyncConnection,
    room_id: str,
    room_version: str,
    creator: str,
    created_ts: int,
    is_public: bool,
) -> None:
    await conn.execute(
        insert(rooms).values(
            room_id=room_id,
            room_version=room_version,
            creator=creator,
            created_ts=created_ts,
            is_public=is_public,
        )
    )


async def ensure_room(
    conn: AsyncConnection, room_id: str, room_version: str, creator: str, created_ts: int
) -> None:
    """A private room's row unless the room has one: a room this server knows only by a
    local user's invite or knock from another server (an out-of-band membership)."""
    await conn.execute(
        insert_for(conn)(rooms)
        .values(
            room_id=room_id,
            room_version=room_version,
            creator=creator,
            created_ts=created_ts,
            is_public=False,
        )
        .on_conflict_do_nothing(index_elements=["room_id"])
    )


async def get_room(db: Database, room_id: str) -> RoomRecord | None:
    async with db.read() as conn:
        row = (await conn.execute(select(rooms).where(rooms.c.room_id == room_id))).first()
    if row is None:
        return None
    return RoomRecord(row.room_id, row.room_version, row.creator, row.created_ts, row.is_public)


async def set_room_public(db: Database, room_id: str, is_public: bool) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            update(rooms).where(rooms.c.room_id == room_id).values(is_public=is_public)
        )


async def get_published_rooms(db: Database) -> list[tuple[str, int]]:
    """(room_id, joined member count) of every room published in the room directory."""
    joined = and_(
        current_state_events.c.room_id == rooms.c.room_id,
        current_state_events.c.type == "m.room.member",
        current_state_events.c.membership == "join",
    )
    query = (
        select(rooms.c.room_id, func.count(current_state_events.c.state_key).label("joined"))
        .select_from(rooms.outerjoin(current_state_events, joined))
        .where(rooms.c.is_public)
        .group_by(rooms.c.room_id)
    )
    async with db.read() as conn:
        return [(row.room_id, int(row.joined)) for row in await conn.execute(query)]
