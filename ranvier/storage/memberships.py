"""room_memberships: every membership event, for history ("was this user in the room at
that point?") and for forgetting rooms."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Table,
    Text,
    false,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata
from ranvier.storage.state import current_state_events

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
    Index("ix_room_memberships_room_stream", "room_id", "stream_ordering"),
    Index("ix_room_memberships_user", "user_id", "room_id"),
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


async def move_memberships(conn: AsyncConnection, rows: Sequence[MembershipRow]) -> None:
    """Memberships that take effect (again) at a new position without a new event: the
    event's row moves there, or is written if the event had none (it was an outlier)."""
    for row in rows:
        moved = await conn.execute(
            update(room_memberships)
            .where(room_memberships.c.event_id == row.event_id)
            .values(membership=row.membership, stream_ordering=row.stream_ordering)
        )
        if moved.rowcount == 0:
            await insert_memberships(conn, [row])


async def forget_room(db: Database, user_id: str, room_id: str) -> None:
    """Mark every membership of the user in the room forgotten; a later membership event
    makes a new, unforgotten row, which is how rejoining un-forgets."""
    async with db.transaction() as conn:
        await conn.execute(
            update(room_memberships)
            .where(room_memberships.c.user_id == user_id, room_memberships.c.room_id == room_id)
            .values(forgotten=True)
        )


async def is_room_forgotten(db: Database, user_id: str, room_id: str) -> bool:
    """Whether the user's latest membership in the room is forgotten."""
    query = (
        select(room_memberships.c.forgotten)
        .where(room_memberships.c.user_id == user_id, room_memberships.c.room_id == room_id)
        .order_by(room_memberships.c.stream_ordering.desc())
        .limit(1)
    )
    async with db.read() as conn:
        return bool((await conn.execute(query)).scalar())


async def get_forgotten_room_ids(db: Database, user_id: str) -> set[str]:
    """Rooms the user has forgotten (for sync to leave out): forgetting marks every row,
    so a room is forgotten while none of the user's memberships in it is unforgotten."""
    query = select(room_memberships.c.room_id, room_memberships.c.forgotten).where(
        room_memberships.c.user_id == user_id
    )
    forgotten: set[str] = set()
    remembered: set[str] = set()
    async with db.read() as conn:
        for row in await conn.execute(query):
            (forgotten if row.forgotten else remembered).add(row.room_id)
    return forgotten - remembered


@dataclass(frozen=True)
class MembershipHistory:
    """One user's memberships in one room, as far as history visibility needs them."""

    # stream positions of every join, oldest first
    join_positions: tuple[int, ...]
    # the latest membership event, or None if the user never had one
    latest_event_id: str | None
    latest_membership: str | None
    latest_position: int | None
    forgotten: bool

    def joined_after(self, position: int) -> bool:
        return bool(self.join_positions) and self.join_positions[-1] > position


async def get_membership_history(db: Database, room_id: str, user_id: str) -> MembershipHistory:
    query = (
        select(
            room_memberships.c.event_id,
            room_memberships.c.membership,
            room_memberships.c.stream_ordering,
            room_memberships.c.forgotten,
        )
        .where(room_memberships.c.room_id == room_id, room_memberships.c.user_id == user_id)
        .order_by(room_memberships.c.stream_ordering)
    )
    async with db.read() as conn:
        rows = list(await conn.execute(query))
    if not rows:
        return MembershipHistory((), None, None, None, False)
    last = rows[-1]
    return MembershipHistory(
        tuple(row.stream_ordering for row in rows if row.membership == "join"),
        last.event_id,
        last.membership,
        last.stream_ordering,
        bool(last.forgotten),
    )


async def get_joined_servers(db: Database, room_ids: Iterable[str]) -> dict[str, set[str]]:
    """room_id -> the servers with a member joined to it now (every room asked is a key)."""
    ids = list(dict.fromkeys(room_ids))
    servers: dict[str, set[str]] = {room_id: set() for room_id in ids}
    member = current_state_events
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = select(member.c.room_id, member.c.state_key).where(
                member.c.room_id.in_(ids[start : start + 500]),
                member.c.type == "m.room.member",
                member.c.membership == "join",
            )
            for row in await conn.execute(query):
                _, _, server = row.state_key.partition(":")
                if server:
                    servers[row.room_id].add(server)
    return servers
