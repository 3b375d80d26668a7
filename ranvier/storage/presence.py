"""presence: each user's last presence, so it survives restarts, with its position in the
presence stream.

Only changes a client can see are written (state, status message, currently active); how
recently a user was active is kept in memory by the presence service between them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Column, Index, Table, Text, select

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata
from ranvier.storage.state import current_state_events
from ranvier.storage.stream_ids import current_position, next_position

PRESENCE_STREAM = "presence"
_CHUNK = 500

presence = Table(
    "presence",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("status_msg", Text, nullable=True),
    Column("last_active_ts", BigInteger, nullable=False),
    Column("last_user_sync_ts", BigInteger, nullable=False),
    Column("currently_active", Boolean, nullable=False),
    Column("stream_id", BigInteger, nullable=False),
    Index("ix_presence_stream_id", "stream_id"),
)


@dataclass(frozen=True)
class PresenceState:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    last_user_sync_ts: int
    currently_active: bool


def _row_to_state(row: object) -> PresenceState:
    return PresenceState(
        user_id=row.user_id,  # type: ignore[attr-defined]
        state=row.state,  # type: ignore[attr-defined]
        status_msg=row.status_msg,  # type: ignore[attr-defined]
        last_active_ts=int(row.last_active_ts),  # type: ignore[attr-defined]
        last_user_sync_ts=int(row.last_user_sync_ts),  # type: ignore[attr-defined]
        currently_active=bool(row.currently_active),  # type: ignore[attr-defined]
    )


class PresenceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, state: PresenceState) -> int:
        """Store the user's presence; returns its stream position."""
        async with self._db.transaction() as conn:
            position = await next_position(conn, PRESENCE_STREAM)
            insert = insert_for(conn)
            values = {
                "state": state.state,
                "status_msg": state.status_msg,
                "last_active_ts": state.last_active_ts,
                "last_user_sync_ts": state.last_user_sync_ts,
                "currently_active": state.currently_active,
                "stream_id": position,
            }
            await conn.execute(
                insert(presence)
                .values(user_id=state.user_id, **values)
                .on_conflict_do_update(index_elements=["user_id"], set_=values)
            )
        return position

    async def get(self, user_id: str) -> PresenceState | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(presence).where(presence.c.user_id == user_id))
            ).first()
        return _row_to_state(row) if row is not None else None

    async def get_many(self, user_ids: Collection[str]) -> list[PresenceState]:
        """The stored presence of those of `user_ids` that have one."""
        ids = list(dict.fromkeys(user_ids))
        found: list[PresenceState] = []
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = await conn.execute(select(presence).where(presence.c.user_id.in_(chunk)))
                found.extend(_row_to_state(row) for row in rows)
        return found

    async def get_not_offline(self) -> list[PresenceState]:
        """Everyone not offline: the users whose timers run after a restart."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(presence).where(presence.c.state != "offline"))
            return [_row_to_state(row) for row in rows]

    async def current_stream_position(self) -> int:
        async with self._db.read() as conn:
            return await current_position(conn, PRESENCE_STREAM)

    async def get_changes_for_members(
        self, user_id: str, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> list[PresenceState]:
        """Presence with a position in (from_pos, to_pos] of `user_id` and of everyone joined
        to one of `room_ids`."""
        ids = list(dict.fromkeys(room_ids))
        found: dict[str, PresenceState] = {}
        in_range = (presence.c.stream_id > from_pos, presence.c.stream_id <= to_pos)
        async with self._db.read() as conn:
            own = (
                await conn.execute(select(presence).where(presence.c.user_id == user_id, *in_range))
            ).first()
            if own is not None:
                found[user_id] = _row_to_state(own)
            for start in range(0, len(ids), _CHUNK):
                members = (
                    select(current_state_events.c.state_key)
                    .where(
                        current_state_events.c.room_id.in_(ids[start : start + _CHUNK]),
                        current_state_events.c.type == "m.room.member",
                        current_state_events.c.membership == "join",
                    )
                    .distinct()
                )
                rows = await conn.execute(
                    select(presence).where(presence.c.user_id.in_(members), *in_range)
                )
                for row in rows:
                    found[row.user_id] = _row_to_state(row)
        return list(found.values())
