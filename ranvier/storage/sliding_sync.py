"""Sliding sync's tables (MSC4186): each room's bump stamp, and the positions handed to
connections.

`sliding_sync_bump_stamps`: the stream position of each room's newest event of a type that
moves the room up a client's list (written in the transaction that persists the event, so
a sorted room list is one read however many rooms a user is in).

`sliding_sync_positions`: one row per `pos` handed out: whose connection it belongs to
(user, device, conn_id), the sync token it reads up to, and what the connection had been
sent of each room by then (room ID -> the room-events position its timeline reached and
the timeline_limit it was sent with), so an incremental request sends only what changed
and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.memberships import room_memberships
from ranvier.storage.metadata import metadata
from ranvier.storage.sync import MembershipAt

sliding_sync_bump_stamps = Table(
    "sliding_sync_bump_stamps",
    metadata,
    Column("room_id", Text(), primary_key=True),
    Column("stream_ordering", BigInteger(), nullable=False),
)

sliding_sync_positions = Table(
    "sliding_sync_positions",
    metadata,
    Column("pos_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("user_id", Text(), nullable=False),
    # "" for a session without a device
    Column("device_id", Text(), nullable=False),
    Column("conn_id", Text(), nullable=False),
    Column("token", Text(), nullable=False),
    # JSON: room ID -> [the room-events position the connection has that room's news up
    # to, the timeline_limit the room was sent with]
    Column("rooms_json", Text(), nullable=False),
    Column("created_ts", BigInteger(), nullable=False),
    Index("ix_sliding_sync_positions_connection", "user_id", "device_id", "conn_id"),
    # never reuse an ID: a position deleted must not come back naming another connection's
    sqlite_autoincrement=True,
)


async def record_bump_stamps(conn: AsyncConnection, room_to_stream: Mapping[str, int]) -> None:
    """Inside the persisting transaction: each room's newest bumping event's position."""
    if not room_to_stream:
        return
    insert = insert_for(conn)(sliding_sync_bump_stamps)
    for room_id, stream in room_to_stream.items():
        statement = insert.values(room_id=room_id, stream_ordering=stream)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["room_id"],
                set_={"stream_ordering": statement.excluded.stream_ordering},
                where=sliding_sync_bump_stamps.c.stream_ordering
                < statement.excluded.stream_ordering,
            )
        )


def _room_list_query() -> Select[Any]:
    members = room_memberships
    stamps = sliding_sync_bump_stamps
    return (
        select(
            members.c.room_id,
            members.c.event_id,
            members.c.membership,
            members.c.stream_ordering,
            members.c.forgotten,
            stamps.c.stream_ordering.label("bump_stamp"),
        )
        .select_from(members.outerjoin(stamps, stamps.c.room_id == members.c.room_id))
        .where(
            members.c.user_id == bindparam("user_id"),
            members.c.stream_ordering > bindparam("after"),
            members.c.stream_ordering <= bindparam("upto"),
        )
        .order_by(members.c.stream_ordering)
    )


# built once: every request runs it
_ROOM_LIST = _room_list_query()


async def get_room_rows(
    db: Database, user_id: str, after: int, upto: int
) -> tuple[list[MembershipAt], dict[str, int]]:
    """The user's membership rows with positions in (after, upto], oldest first, and the
    bump stamps of their rooms, in one read."""
    rows: list[MembershipAt] = []
    room_to_stamp: dict[str, int] = {}
    async with db.read() as conn:
        result = await conn.execute(_ROOM_LIST, {"user_id": user_id, "after": after, "upto": upto})
        # unpacked, not read by name: a user in thousands of rooms makes this loop hot,
        # and a row's attributes cost several times its unpacking
        for room_id, event_id, membership, stream, forgotten, stamp in result.all():
            rows.append(MembershipAt(room_id, event_id, membership, stream, bool(forgotten)))
            if stamp is not None:
                room_to_stamp[room_id] = stamp
    return rows, room_to_stamp


async def get_bump_stamps(db: Database, room_ids: Collection[str]) -> dict[str, int]:
    if not room_ids:
        return {}
    table = sliding_sync_bump_stamps
    async with db.read() as conn:
        result = await conn.execute(
            select(table.c.room_id, table.c.stream_ordering).where(
                table.c.room_id.in_(list(room_ids))
            )
        )
        return {room_id: stamp for room_id, stamp in result.all()}


class SentRoom(NamedTuple):
    """What a connection was sent of a room."""

    # the room-events position the connection has the room's news up to
    position: int
    # the timeline_limit it was last sent with
    timeline_limit: int
    # the required_state pairs it was last sent with; None for positions stored before
    # they were recorded
    required_state: tuple[tuple[str, str], ...] | None = None


def _sent_room(stored: list[Any]) -> SentRoom:
    pairs = stored[2] if len(stored) > 2 else None
    return SentRoom(
        stored[0],
        stored[1],
        tuple((kind, key) for kind, key in pairs) if pairs is not None else None,
    )


@dataclass(frozen=True)
class StoredPosition:
    pos_id: int
    user_id: str
    device_id: str
    conn_id: str
    token: str
    room_to_sent: dict[str, SentRoom]
    created_ts: int


# built once: every request from a `pos` runs it
_GET_POSITION = select(sliding_sync_positions).where(
    sliding_sync_positions.c.pos_id == bindparam("pos_id")
)


async def get_position(db: Database, pos_id: int) -> StoredPosition | None:
    async with db.read() as conn:
        row = (await conn.execute(_GET_POSITION, {"pos_id": pos_id})).first()
    if row is None:
        return None
    return StoredPosition(
        row.pos_id,
        row.user_id,
        row.device_id,
        row.conn_id,
        row.token,
        {room_id: _sent_room(sent) for room_id, sent in orjson.loads(row.rooms_json).items()},
        row.created_ts,
    )


async def add_position(
    db: Database,
    *,
    user_id: str,
    device_id: str,
    conn_id: str,
    token: str,
    room_to_sent: Mapping[str, SentRoom],
    created_ts: int,
    keep_from: int | None,
) -> int:
    """Store a new position and return its ID. The connection's positions before
    `keep_from` go (the one the request was made from stays, so a client that retries
    it after a lost response gets an answer); None: the connection starts afresh."""
    table = sliding_sync_positions
    async with db.transaction() as conn:
        connection = (
            (table.c.user_id == user_id)
            & (table.c.device_id == device_id)
            & (table.c.conn_id == conn_id)
        )
        if keep_from is None:
            await conn.execute(delete(table).where(connection))
        else:
            await conn.execute(delete(table).where(connection, table.c.pos_id < keep_from))
        result = await conn.execute(
            table.insert().values(
                user_id=user_id,
                device_id=device_id,
                conn_id=conn_id,
                token=token,
                rooms_json=orjson.dumps(
                    {room_id: list(sent) for room_id, sent in room_to_sent.items()}
                ).decode(),
                created_ts=created_ts,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


async def delete_device_positions(db: Database, user_id: str, device_ids: Collection[str]) -> None:
    """The positions of every connection of devices logged out: no client can use them."""
    if not device_ids:
        return
    table = sliding_sync_positions
    async with db.transaction() as conn:
        await conn.execute(
            delete(table).where(table.c.user_id == user_id, table.c.device_id.in_(list(device_ids)))
        )


async def delete_positions_before(db: Database, created_before_ts: int) -> int:
    """Positions handed out before the time: their connections have been abandoned (each
    used connection gets a new one at every request). Returns how many went."""
    table = sliding_sync_positions
    async with db.transaction() as conn:
        result = await conn.execute(delete(table).where(table.c.created_ts < created_before_ts))
        return int(result.rowcount or 0)
