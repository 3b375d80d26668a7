"""Purging a room on both engines: no row about it is left in any table (the full text
index made in raw SQL included), other rooms keep theirs, the block and reports stay."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import column, func, inspect, select, table, text
from sqlalchemy.engine import Connection

from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage.aliases import insert_alias
from ranvier.storage.database import Database
from ranvier.storage.room_admin import KEPT_ON_PURGE, RoomAdminStore
from ranvier.storage.search import SearchEntry, index_events

SERVER = "test.localhost"
ALICE = f"@alice:{SERVER}"
KEY = ServerSigningKey.from_seed(b"\x02" * 32, "test")


async def make_room(sender: RoomEventSender) -> tuple[str, list[str]]:
    version = KNOWN_ROOM_VERSIONS["10"]
    room_id, created = await sender.create_room(
        room_version=version,
        creator=ALICE,
        create_content={},
        initial=[
            EventTemplate("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE),
            EventTemplate("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, state_key=""),
            EventTemplate("m.room.join_rules", ALICE, {"join_rule": "public"}, state_key=""),
        ],
        room_id=f"!{secrets.token_hex(8)}:{SERVER}",
    )
    message = await sender.send(
        EventTemplate("m.room.message", ALICE, {"msgtype": "m.text", "body": "hi"}, room_id),
        (ALICE, "DEVICE", f"send/{room_id}/m.room.message", secrets.token_hex(4)),
    )
    reply = await sender.send(
        EventTemplate(
            "m.reaction",
            ALICE,
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": message.event_id,
                    "key": "x",
                }
            },
            room_id,
        )
    )
    redaction = await sender.send(
        EventTemplate(
            "m.room.redaction", ALICE, {"redacts": reply.event_id}, room_id, None, reply.event_id
        )
    )
    topic = await sender.send(EventTemplate("m.room.topic", ALICE, {"topic": "t"}, room_id, ""))
    event_ids = [e.event_id for e in created] + [
        message.event_id,
        reply.event_id,
        redaction.event_id,
        topic.event_id,
    ]
    async with sender.db.transaction() as conn:
        await insert_alias(conn, f"#{secrets.token_hex(4)}:{SERVER}", room_id, ALICE)
        await index_events(
            conn, [SearchEntry(message.event_id, room_id, ALICE, "content.body", "hi there")]
        )
    return room_id, event_ids


def _counts(conn: Connection, room_id: str, event_ids: list[str]) -> dict[str, int]:
    inspector = inspect(conn)
    counts: dict[str, int] = {}
    for name in inspector.get_table_names():
        columns = {str(info["name"]) for info in inspector.get_columns(name)}
        if "room_id" in columns:
            swept = table(name, column("room_id"))
            query: Any = select(func.count()).select_from(swept).where(swept.c.room_id == room_id)
        elif "event_id" in columns:
            swept = table(name, column("event_id"))
            query = select(func.count()).select_from(swept).where(swept.c.event_id.in_(event_ids))
        else:
            continue
        counts[name] = int(conn.execute(query).scalar_one())
    return counts


async def counts(db: Database, room_id: str, event_ids: list[str]) -> dict[str, int]:
    async with db.read() as conn:
        return await conn.run_sync(_counts, room_id, event_ids)


async def test_purge_removes_every_row_of_the_room_and_only_that_room(database: Database) -> None:
    loader = EventLoader(database, events_cache_size=100, state_cache_size=10)
    sender = await RoomEventSender.create(database, loader, SERVER, KEY)
    store = RoomAdminStore(database, SERVER)
    doomed, doomed_events = await make_room(sender)
    kept, kept_events = await make_room(sender)
    await store.block(doomed, ALICE)
    async with database.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO event_reports (received_ts, room_id, event_id, user_id, content) "
                "VALUES (1, :room_id, :event_id, :user_id, '{}')"
            ),
            {"room_id": doomed, "event_id": doomed_events[-1], "user_id": ALICE},
        )

    before = await counts(database, doomed, doomed_events)
    for name in ("events", "event_edges", "current_state_events", "room_memberships", "rooms"):
        assert before[name] > 0, name
    assert before["event_search"] == 1
    assert before["room_aliases"] == 1
    assert before["event_relations"] == 1
    assert before["redactions"] == 1
    kept_before = await counts(database, kept, kept_events)

    await store.purge_room(doomed)

    after = await counts(database, doomed, doomed_events)
    left = {name: count for name, count in after.items() if count and name not in KEPT_ON_PURGE}
    assert left == {}
    assert after["blocked_rooms"] == 1
    assert after["event_reports"] == 1
    assert await store.is_blocked(doomed)
    assert not await store.room_exists(doomed)
    assert await counts(database, kept, kept_events) == kept_before
    async with database.read() as conn:
        groups = (
            await conn.execute(
                text("SELECT COUNT(*) FROM state_groups WHERE room_id = :room_id"),
                {"room_id": doomed},
            )
        ).scalar_one()
    assert groups == 0
