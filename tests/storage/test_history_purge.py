"""Purging a room's history on both engines: every table keyed by an event is either
cleared with the events a purge deletes or named as kept; state and local events stay as
outliers unless local ones are to be deleted; the point and later events are untouched."""

from __future__ import annotations

from typing import Any

from sqlalchemy import column, func, inspect, select, table
from sqlalchemy.engine import Connection

from ranvier.protocol.event_builder import EventTemplate
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import events as event_store
from ranvier.storage.database import Database
from ranvier.storage.history_purge import (
    DELETED_WITH_EVENT,
    KEPT_ON_HISTORY_PURGE,
    HistoryPurgeStore,
)
from tests.storage.test_room_purge import ALICE, KEY, SERVER, counts, make_room

# cleared by the purge itself, not through DELETED_WITH_EVENT
CLEARED_OTHERWISE = {"events", "event_push_actions", "event_search"}
EVENT_COLUMNS = {"event_id", "redacts", "relates_to_id", "auth_id", "prev_event_id"}


def _tables_naming_events(conn: Connection) -> set[str]:
    inspector = inspect(conn)
    return {
        name
        for name in inspector.get_table_names()
        if EVENT_COLUMNS & {str(info["name"]) for info in inspector.get_columns(name)}
    }


async def test_every_table_naming_events_is_cleared_or_kept(database: Database) -> None:
    async with database.read() as conn:
        naming = await conn.run_sync(_tables_naming_events)
    cleared = {swept.name for swept, _ in DELETED_WITH_EVENT}
    assert naming - cleared - KEPT_ON_HISTORY_PURGE - CLEARED_OTHERWISE == set()


def _count_in(conn: Connection, name: str, event_ids: list[str]) -> int:
    swept = table(name, column("event_id"))
    query: Any = select(func.count()).select_from(swept).where(swept.c.event_id.in_(event_ids))
    return int(conn.execute(query).scalar_one())


async def _purge(store: HistoryPurgeStore, point_id: str, delete_local: bool) -> None:
    point = await store.point_at_event(point_id)
    assert point is not None
    while True:
        batch = await store.purge_batch(point, delete_local_events=delete_local, limit=2)
        if not batch.deleted and not batch.kept_as_outliers:
            return


async def test_purge_keeps_local_events_as_outliers_or_deletes_them(database: Database) -> None:
    loader = EventLoader(database, events_cache_size=100, state_cache_size=10)
    sender = await RoomEventSender.create(database, loader, SERVER, KEY)
    store = HistoryPurgeStore(database, SERVER)
    for delete_local in (False, True):
        room_id, event_ids = await make_room(sender)
        point = await sender.send(
            EventTemplate("m.room.message", ALICE, {"msgtype": "m.text", "body": "p"}, room_id)
        )
        later = await sender.send(
            EventTemplate("m.room.message", ALICE, {"msgtype": "m.text", "body": "l"}, room_id)
        )
        stored = await event_store.get_events(database, event_ids)
        messages = [i for i in event_ids if "state_key" not in stored[i].pdu]
        states = [i for i in event_ids if "state_key" in stored[i].pdu]
        before = await counts(database, room_id, event_ids)

        await _purge(store, point.event_id, delete_local)

        after = await counts(database, room_id, event_ids)
        found = await event_store.get_events(database, [*event_ids, point.event_id, later.event_id])
        assert all(found[i].outlier for i in states)
        assert not found[point.event_id].outlier and not found[later.event_id].outlier
        assert after["event_search"] == 0
        assert after["current_state_events"] == before["current_state_events"]
        assert after["room_forward_extremities"] == before["room_forward_extremities"]
        if delete_local:
            assert not set(messages) & set(found)
            async with database.read() as conn:
                for swept, _ in DELETED_WITH_EVENT:
                    assert await conn.run_sync(_count_in, swept.name, messages) == 0, swept.name
        else:
            assert all(found[i].outlier for i in messages)
        page = await event_store.paginate_room_events(
            database, room_id, backwards=True, start=None, stop=None, limit=100
        )
        assert [p.event_id for p in page] == [later.event_id, point.event_id]
