"""The events one user sent, for the admin: to redact them all (Synapse's "Redact all the
events of a user" admin API) and to count the invites they sent and the rooms they joined.
The tables are the events and memberships stores'."""

from __future__ import annotations

from sqlalchemy import distinct, func, select

from ranvier.storage.database import Database
from ranvier.storage.events import events, redactions
from ranvier.storage.memberships import room_memberships

REDACTION = "m.room.redaction"


class UserEventQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def rooms_with_events_by(self, user_id: str) -> list[str]:
        query = select(distinct(events.c.room_id)).where(events.c.sender == user_id)
        async with self._db.read() as conn:
            return sorted(row[0] for row in await conn.execute(query))

    async def unredacted_events(self, user_id: str, room_id: str, limit: int) -> list[str]:
        """The user's newest non-state events in the room not redacted yet (redactions
        themselves left out), at most `limit`."""
        redacted = select(redactions.c.redacts)
        query = (
            select(events.c.event_id)
            .where(
                events.c.room_id == room_id,
                events.c.sender == user_id,
                events.c.state_key.is_(None),
                events.c.type != REDACTION,
                events.c.outlier.is_(False),
                events.c.rejected_reason.is_(None),
                events.c.event_id.not_in(redacted),
            )
            .order_by(events.c.stream_ordering.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [row.event_id for row in await conn.execute(query)]

    async def count_invites_sent(self, user_id: str, from_ts: int) -> int:
        """Invites the user sent to others from `from_ts` on (ms, when sent)."""
        query = (
            select(func.count())
            .select_from(
                room_memberships.join(events, events.c.event_id == room_memberships.c.event_id)
            )
            .where(
                room_memberships.c.sender == user_id,
                room_memberships.c.user_id != user_id,
                room_memberships.c.membership == "invite",
                events.c.origin_server_ts >= from_ts,
            )
        )
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def count_rooms_joined(self, user_id: str, from_ts: int) -> int:
        """The rooms the user joined from `from_ts` on, each counted once."""
        query = (
            select(func.count(distinct(room_memberships.c.room_id)))
            .select_from(
                room_memberships.join(events, events.c.event_id == room_memberships.c.event_id)
            )
            .where(
                room_memberships.c.user_id == user_id,
                room_memberships.c.membership == "join",
                events.c.origin_server_ts >= from_ts,
            )
        )
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
