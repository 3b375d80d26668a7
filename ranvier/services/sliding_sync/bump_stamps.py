"""Keeps each room's bump stamp (room_list.BUMP_EVENT_TYPES) as events persist: a
RoomEventSender.prepare_persist step whose write commits with the events, so a sorted
room list never misses one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.protocol.events import Event
from ranvier.services.rooms.sender import PersistWriter
from ranvier.services.sliding_sync.room_list import BUMP_EVENT_TYPES
from ranvier.storage import sliding_sync as store
from ranvier.storage.state import StateMap


async def prepare_bump_stamps(events: Sequence[Event], _state: StateMap) -> PersistWriter | None:
    bumping = [event for event in events if event.type in BUMP_EVENT_TYPES]
    if not bumping:
        return None

    async def write(conn: AsyncConnection, orderings: Mapping[str, int]) -> None:
        room_to_stream: dict[str, int] = {}
        for event in bumping:
            position = orderings.get(event.event_id)
            # below zero: backfilled, or not in the timeline (outliers, rejected,
            # soft-failed), which never move a room
            if position is not None and position > 0:
                room_to_stream[event.room_id] = max(position, room_to_stream.get(event.room_id, 0))
        await store.record_bump_stamps(conn, room_to_stream)

    return write
