"""The events one user sent, for redacting them all (Synapse's "Redact all the events of
a user" admin API). The tables are the events store's."""

from __future__ import annotations

from sqlalchemy import distinct, select

from ranvier.storage.database import Database
from ranvier.storage.events import events, redactions

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
