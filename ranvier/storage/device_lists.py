"""device_lists_stream: one row per change to a user's device list, in the device_lists stream.

A change is a device that uploaded keys, was renamed or deleted (its device ID), or a change
to the user's cross-signing keys or signatures ("" for the device). Writers record it with
`record_device_list_change` inside their own transaction, so the change and its position
commit together. Readers ask which users changed between two positions, narrowed to the
people who share a room with someone (room membership is read from the rooms' tables).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    PrimaryKeyConstraint,
    Select,
    Table,
    Text,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.memberships import room_memberships
from ranvier.storage.metadata import metadata
from ranvier.storage.state import current_state_events
from ranvier.storage.stream_ids import current_position, next_position

DEVICE_LISTS_STREAM = "device_lists"
# the "device" of a change to the user's cross-signing keys or signatures
USER_KEYS = ""
# IN lists are chunked to stay inside every engine's parameter limit
_CHUNK = 500

device_lists_stream = Table(
    "device_lists_stream",
    metadata,
    Column("stream_id", BigInteger, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    PrimaryKeyConstraint("stream_id", "user_id", "device_id"),
    Index("ix_device_lists_stream_user_id", "user_id", "stream_id"),
)

# Key changes only one user is told of (`from_user_id` sees `user_id` in device_lists
# changed): their own new user-signing key, their signature of another user's master key.
user_signature_stream = Table(
    "user_signature_stream",
    metadata,
    Column("stream_id", BigInteger, nullable=False),
    Column("from_user_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    PrimaryKeyConstraint("stream_id", "from_user_id", "user_id"),
    Index("ix_user_signature_stream_from_user", "from_user_id", "stream_id"),
)


async def record_user_signature_change(
    conn: AsyncConnection, from_user_id: str, user_ids: Sequence[str]
) -> int:
    """Take a device_lists position for a change only `from_user_id` is told of (the keys
    of `user_ids` changed for them), in the caller's write transaction; returns it."""
    position = await next_position(conn, DEVICE_LISTS_STREAM)
    await conn.execute(
        insert(user_signature_stream),
        [
            {"stream_id": position, "from_user_id": from_user_id, "user_id": user_id}
            for user_id in dict.fromkeys(user_ids)
        ],
    )
    return position


async def record_device_list_change(
    conn: AsyncConnection, user_id: str, device_ids: Sequence[str]
) -> int:
    """Take a device_lists position for a change to the user's devices (or USER_KEYS) in
    the caller's write transaction; returns it."""
    position = await next_position(conn, DEVICE_LISTS_STREAM)
    await conn.execute(
        insert(device_lists_stream),
        [
            {"stream_id": position, "user_id": user_id, "device_id": device_id}
            for device_id in dict.fromkeys(device_ids)
        ],
    )
    return position


def _joined_members(room_ids: Sequence[str]) -> Select[str]:
    """Everyone joined to at least one of the rooms now, as a query."""
    return (
        select(current_state_events.c.state_key)
        .where(
            current_state_events.c.room_id.in_(room_ids),
            current_state_events.c.type == "m.room.member",
            current_state_events.c.membership == "join",
        )
        .distinct()
    )


@dataclass(frozen=True)
class MembershipChange:
    room_id: str
    user_id: str
    membership: str


class DeviceListStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def current_stream_position(self) -> int:
        async with self._db.read() as conn:
            return await current_position(conn, DEVICE_LISTS_STREAM)

    async def get_changed_users(
        self, user_id: str, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> set[str]:
        """Users with a change in (from_pos, to_pos] who are `user_id` or joined to one of
        `room_ids` now, and those whose keys changed for `user_id` alone."""
        ids = list(dict.fromkeys(room_ids))
        in_range = (
            device_lists_stream.c.stream_id > from_pos,
            device_lists_stream.c.stream_id <= to_pos,
        )
        found: set[str] = set()
        async with self._db.read() as conn:
            for start in range(0, max(len(ids), 1), _CHUNK):
                members = _joined_members(ids[start : start + _CHUNK])
                query = (
                    select(device_lists_stream.c.user_id)
                    .where(
                        or_(
                            device_lists_stream.c.user_id == user_id,
                            device_lists_stream.c.user_id.in_(members),
                        ),
                        *in_range,
                    )
                    .distinct()
                )
                found.update((await conn.execute(query)).scalars())
            private = select(user_signature_stream.c.user_id).where(
                user_signature_stream.c.from_user_id == user_id,
                user_signature_stream.c.stream_id > from_pos,
                user_signature_stream.c.stream_id <= to_pos,
            )
            found.update((await conn.execute(private)).scalars())
        return found

    async def get_joined_members(self, room_ids: Collection[str]) -> set[str]:
        """Everyone joined to at least one of the rooms now."""
        ids = list(dict.fromkeys(room_ids))
        found: set[str] = set()
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = _joined_members(ids[start : start + _CHUNK])
                found.update((await conn.execute(query)).scalars())
        return found

    async def get_membership_changes(
        self, room_ids: Collection[str], after: int, upto: int
    ) -> list[MembershipChange]:
        """Membership events in the rooms with a room-events position in (after, upto],
        oldest first."""
        ids = list(dict.fromkeys(room_ids))
        changes: list[tuple[int, MembershipChange]] = []
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(
                    room_memberships.c.room_id,
                    room_memberships.c.user_id,
                    room_memberships.c.membership,
                    room_memberships.c.stream_ordering,
                ).where(
                    room_memberships.c.room_id.in_(ids[start : start + _CHUNK]),
                    room_memberships.c.stream_ordering > after,
                    room_memberships.c.stream_ordering <= upto,
                )
                for row in await conn.execute(query):
                    changes.append(
                        (
                            int(row.stream_ordering),
                            MembershipChange(row.room_id, row.user_id, row.membership),
                        )
                    )
        changes.sort(key=lambda change: change[0])
        return [change for _, change in changes]


class DeviceChangeLog:
    """What the device_lists stream says of one user's devices, for telling other servers
    (m.device_list_update's stream_id and prev_id are positions in it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def devices_changed_at(self, user_id: str, position: int) -> list[str]:
        """The device IDs (USER_KEYS for cross-signing) of the user's change at `position`."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(device_lists_stream.c.device_id).where(
                    device_lists_stream.c.user_id == user_id,
                    device_lists_stream.c.stream_id == position,
                )
            )
            return sorted(rows.scalars())

    async def latest_device_change(self, user_id: str, before: int | None = None) -> int | None:
        """The position of the user's newest change to a device (not to cross-signing
        keys), below `before` if given."""
        query = select(func.max(device_lists_stream.c.stream_id)).where(
            device_lists_stream.c.user_id == user_id,
            device_lists_stream.c.device_id != USER_KEYS,
        )
        if before is not None:
            query = query.where(device_lists_stream.c.stream_id < before)
        async with self._db.read() as conn:
            found = (await conn.execute(query)).scalar()
        return None if found is None else int(found)
