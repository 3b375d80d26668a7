"""The admin's view of a room's forward extremities (Synapse's "Forward Extremities" admin
API): listing them with their depth and state group, and dropping all but the newest when
too many slow the room down. The table is the events store's; these are admin tools."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from ranvier.storage.database import Database
from ranvier.storage.events import events, room_forward_extremities
from ranvier.storage.state import event_to_state_groups


@dataclass(frozen=True)
class ExtremityView:
    event_id: str
    state_group: int | None
    depth: int
    received_ts: int


class ForwardExtremityQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def extremities(self, room_id: str) -> list[ExtremityView]:
        """Newest first (by depth, then by when they were stored)."""
        query = (
            select(
                events.c.event_id,
                event_to_state_groups.c.state_group,
                events.c.topological_ordering,
                events.c.received_ts,
            )
            .select_from(
                room_forward_extremities.join(
                    events, events.c.event_id == room_forward_extremities.c.event_id
                ).outerjoin(
                    event_to_state_groups,
                    event_to_state_groups.c.event_id == events.c.event_id,
                )
            )
            .where(room_forward_extremities.c.room_id == room_id)
            .order_by(events.c.topological_ordering.desc(), events.c.stream_ordering.desc())
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ExtremityView(r.event_id, r.state_group, r.topological_ordering, r.received_ts)
            for r in rows
        ]

    async def delete_all_but_newest(self, room_id: str) -> int:
        """Drop every extremity but the newest; how many went."""
        extremities = await self.extremities(room_id)
        doomed = [e.event_id for e in extremities[1:]]
        if not doomed:
            return 0
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(room_forward_extremities).where(
                    room_forward_extremities.c.room_id == room_id,
                    room_forward_extremities.c.event_id.in_(doomed),
                )
            )
        return int(result.rowcount)
