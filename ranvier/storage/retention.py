"""What message retention reads: the rooms this server holds state for, their
`m.room.retention` policy events, and counts of a room's events (to tell what a purge did).
The purging itself is storage/history_purge.py's."""

from __future__ import annotations

from sqlalchemy import func, select

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.state import current_state_events

RETENTION = "m.room.retention"


async def rooms_with_state(db: Database) -> list[str]:
    """Every room with a current state here, local or another server's."""
    query = (
        select(current_state_events.c.room_id)
        .where(
            current_state_events.c.type == "m.room.create", current_state_events.c.state_key == ""
        )
        .order_by(current_state_events.c.room_id)
    )
    async with db.read() as conn:
        return [row.room_id for row in await conn.execute(query)]


async def policy_event_ids(db: Database, room_ids: list[str]) -> dict[str, str]:
    """room ID -> the event ID of its current `m.room.retention`, for the rooms with one."""
    found: dict[str, str] = {}
    async with db.read() as conn:
        # chunks keep the IN list inside every engine's parameter limit
        for start in range(0, len(room_ids), 500):
            query = select(current_state_events.c.room_id, current_state_events.c.event_id).where(
                current_state_events.c.room_id.in_(room_ids[start : start + 500]),
                current_state_events.c.type == RETENTION,
                current_state_events.c.state_key == "",
            )
            for row in await conn.execute(query):
                found[row.room_id] = row.event_id
    return found


async def count_room_events(db: Database, room_id: str) -> int:
    """The events stored for a room, outliers included."""
    query = select(func.count()).select_from(events).where(events.c.room_id == room_id)
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())
