"""receipts: the latest read receipt of each user, per receipt type and thread, in a room.

Each write takes a position in the receipts stream in its own transaction, so /sync can ask
for the receipts that changed after a position it has seen. A row is replaced when its user
moves the receipt: only the latest one matters to a client.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, PrimaryKeyConstraint, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.events import events
from ranvier.storage.metadata import metadata
from ranvier.storage.stream_ids import current_position, next_position

RECEIPTS_STREAM = "receipts"
# an unthreaded receipt: primary key columns cannot be NULL
UNTHREADED = ""
# rooms per IN list, well inside every engine's parameter limit
_CHUNK = 500

receipts = Table(
    "receipts",
    metadata,
    Column("room_id", Text, nullable=False),
    Column("receipt_type", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("thread_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("stream_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("room_id", "receipt_type", "user_id", "thread_id"),
    Index("ix_receipts_stream_id", "stream_id"),
)


@dataclass(frozen=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    # None for an unthreaded receipt
    thread_id: str | None
    event_id: str
    ts: int


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put_receipt(self, receipt: Receipt) -> int | None:
        """Store `receipt` in place of the user's previous one of its type and thread; returns
        its stream position, or None when the previous one is for the same or a later event
        (receipts only move forwards, as in Synapse: a client that re-reads old messages
        must not bring back their notifications)."""
        thread_id = receipt.thread_id if receipt.thread_id is not None else UNTHREADED
        async with self._db.transaction() as conn:
            if await self._is_behind(conn, receipt, thread_id):
                return None
            position = await next_position(conn, RECEIPTS_STREAM)
            insert = insert_for(conn)
            values = {"event_id": receipt.event_id, "ts": receipt.ts, "stream_id": position}
            await conn.execute(
                insert(receipts)
                .values(
                    room_id=receipt.room_id,
                    receipt_type=receipt.receipt_type,
                    user_id=receipt.user_id,
                    thread_id=thread_id,
                    **values,
                )
                .on_conflict_do_update(
                    index_elements=["room_id", "receipt_type", "user_id", "thread_id"],
                    set_=values,
                )
            )
        return position

    async def _is_behind(self, conn: AsyncConnection, receipt: Receipt, thread_id: str) -> bool:
        previous = events.alias("previous")
        new = events.alias("new")
        query = (
            select(previous.c.stream_ordering, new.c.stream_ordering)
            .select_from(receipts)
            .join(previous, previous.c.event_id == receipts.c.event_id)
            .outerjoin(new, new.c.event_id == receipt.event_id)
            .where(
                receipts.c.room_id == receipt.room_id,
                receipts.c.receipt_type == receipt.receipt_type,
                receipts.c.user_id == receipt.user_id,
                receipts.c.thread_id == thread_id,
            )
        )
        row = (await conn.execute(query)).first()
        # an event not stored here (a receipt for an unknown event) cannot be ordered: keep it
        return row is not None and row[1] is not None and row[0] >= row[1]

    async def newest_known(self, room_id: str, event_ids: Collection[str]) -> str | None:
        """Of `event_ids`, the one of the room latest in our stream, or None if none is
        stored here (a receipt may name several, the extremities read up to)."""
        query = (
            select(events.c.event_id)
            .where(events.c.room_id == room_id, events.c.event_id.in_(list(event_ids)))
            .order_by(events.c.stream_ordering.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return row.event_id if row is not None else None

    async def current_stream_position(self) -> int:
        async with self._db.read() as conn:
            return await current_position(conn, RECEIPTS_STREAM)

    async def get_receipts(
        self, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> list[Receipt]:
        """Receipts in the rooms whose position is in (from_pos, to_pos]; from_pos 0: all."""
        ids = list(dict.fromkeys(room_ids))
        found: list[Receipt] = []
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = (
                    select(receipts)
                    .where(
                        receipts.c.room_id.in_(ids[start : start + _CHUNK]),
                        receipts.c.stream_id > from_pos,
                        receipts.c.stream_id <= to_pos,
                    )
                    .order_by(receipts.c.stream_id)
                )
                for row in await conn.execute(query):
                    found.append(
                        Receipt(
                            room_id=row.room_id,
                            receipt_type=row.receipt_type,
                            user_id=row.user_id,
                            thread_id=row.thread_id or None,
                            event_id=row.event_id,
                            ts=int(row.ts),
                        )
                    )
        return found
