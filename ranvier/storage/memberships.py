"""room_memberships: every membership event, for history ("was this user in the room at
that point?") and for forgetting rooms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Column, Table, Text, false, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.metadata import metadata

room_memberships = Table(
    "room_memberships",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("room_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("membership", Text, nullable=False),
    Column("stream_ordering", BigInteger, nullable=False),
    Column("forgotten", Boolean, nullable=False, server_default=false()),
)


@dataclass(frozen=True)
class MembershipRow:
    event_id: str
    room_id: str
    user_id: str
    sender: str
    membership: str
    stream_ordering: int


async def insert_memberships(conn: AsyncConnection, rows: Sequence[MembershipRow]) -> None:
    if rows:
        await conn.execute(
            insert(room_memberships),
            [
                {
                    "event_id": row.event_id,
                    "room_id": row.room_id,
                    "user_id": row.user_id,
                    "sender": row.sender,
                    "membership": row.membership,
                    "stream_ordering": row.stream_ordering,
                }
                for row in rows
            ],
        )
