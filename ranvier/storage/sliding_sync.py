"""Sliding sync's tables (MSC4186): each room's bump stamp, and the positions handed to
connections.

`sliding_sync_bump_stamps`: the stream position of each room's newest event of a type that
moves the room up a client's list (written in the transaction that persists the event, so
a sorted room list is one read however many rooms a user is in).

`sliding_sync_positions`: one row per `pos` handed out: whose connection it belongs to
(user, device, conn_id), the sync token it reads up to, and what the connection had been
sent of each room by then (room ID -> the room-events position its timeline reached), so
an incremental request sends only what changed and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata

# IN lists are chunked to stay inside every engine's parameter limit
_CHUNK = 500

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
    # JSON: room ID -> the room-events position the connection has that room's news up to
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


async def get_bump_stamps(db: Database, room_ids: Iterable[str]) -> dict[str, int]:
    """room_id -> its bump stamp; rooms with no bumping event (or only backfilled ones)
    are absent."""
    ids = list(dict.fromkeys(room_ids))
    found: dict[str, int] = {}
    table = sliding_sync_bump_stamps
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = select(table.c.room_id, table.c.stream_ordering).where(
                table.c.room_id.in_(ids[start : start + _CHUNK])
            )
            for row in await conn.execute(query):
                found[row.room_id] = row.stream_ordering
    return found


@dataclass(frozen=True)
class StoredPosition:
    pos_id: int
    user_id: str
    device_id: str
    conn_id: str
    token: str
    # room ID -> the room-events position the connection has the room's news up to
    room_to_sent: dict[str, int]


async def get_position(db: Database, pos_id: int) -> StoredPosition | None:
    table = sliding_sync_positions
    async with db.read() as conn:
        row = (await conn.execute(select(table).where(table.c.pos_id == pos_id))).first()
    if row is None:
        return None
    return StoredPosition(
        row.pos_id,
        row.user_id,
        row.device_id,
        row.conn_id,
        row.token,
        orjson.loads(row.rooms_json),
    )


async def add_position(
    db: Database,
    *,
    user_id: str,
    device_id: str,
    conn_id: str,
    token: str,
    room_to_sent: Mapping[str, int],
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
                rooms_json=orjson.dumps(dict(room_to_sent)).decode(),
                created_ts=created_ts,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])
