"""What retention reads and writes: the rooms this server holds state for, their
`m.room.retention` policy events, counts of a room's events (to tell what a purge did),
and redactions by age with the pruned copies of the events they redact. The purging of
history itself is storage/history_purge.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import case, false, func, select, update

from ranvier.storage.database import Database
from ranvier.storage.events import events, redactions
from ranvier.storage.memberships import room_memberships
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


@dataclass(frozen=True)
class RedactionRecord:
    redaction_id: str
    redacts: str
    received_ts: int


async def redactions_received_between(
    db: Database, after_ts: int, up_to_ts: int, limit: int
) -> list[RedactionRecord]:
    """Redactions this server received in (after_ts, up_to_ts], oldest first."""
    query = (
        select(redactions.c.event_id, redactions.c.redacts, events.c.received_ts)
        .select_from(redactions.join(events, events.c.event_id == redactions.c.event_id))
        .where(
            events.c.received_ts > after_ts,
            events.c.received_ts <= up_to_ts,
            events.c.rejected_reason.is_(None),
        )
        .order_by(events.c.received_ts, redactions.c.event_id)
        .limit(limit)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [RedactionRecord(row.event_id, row.redacts, row.received_ts) for row in rows]


async def replace_event_json(db: Database, event_id_to_pdu: dict[str, dict[str, Any]]) -> None:
    """Store these PDUs in place of the events' (pruned copies of them)."""
    if not event_id_to_pdu:
        return
    async with db.transaction() as conn:
        for event_id, pdu in event_id_to_pdu.items():
            await conn.execute(
                update(events)
                .where(events.c.event_id == event_id)
                .values(json=orjson.dumps(pdu).decode())
            )


async def rooms_forgotten_since(db: Database, server_name: str, before_ts: int) -> list[str]:
    """Rooms where every membership of this server's users is forgotten, the last of them
    received before `before_ts`."""
    local = room_memberships.c.user_id.endswith(":" + server_name, autoescape=True)
    query = (
        select(room_memberships.c.room_id)
        .select_from(
            room_memberships.join(events, events.c.event_id == room_memberships.c.event_id)
        )
        .where(local)
        .group_by(room_memberships.c.room_id)
        .having(
            func.sum(case((room_memberships.c.forgotten == false(), 1), else_=0)) == 0,
            func.max(events.c.received_ts) < before_ts,
        )
        .order_by(room_memberships.c.room_id)
    )
    async with db.read() as conn:
        return [row.room_id for row in await conn.execute(query)]
