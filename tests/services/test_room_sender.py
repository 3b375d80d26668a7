"""The room event pipeline on both engines: create, send, serialise, persist, restart."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any

import pytest

from ranvier.protocol.auth import AuthError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.signing import verify_event_signatures
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.rooms import sender as sender_module
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

SERVER = "test.localhost"
ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"
KEY = ServerSigningKey.from_seed(b"\x01" * 32, "test")


async def new_sender(database: Database) -> RoomEventSender:
    loader = EventLoader(database, events_cache_size=1000, state_cache_size=100)
    return await RoomEventSender.create(database, loader, SERVER, KEY)


def initial_state(creator: str, version: RoomVersion) -> list[EventTemplate]:
    # v12 creators have infinite power and may not be listed (rooms/v12 rule 10.4)
    users = {} if version.privileged_creators else {creator: 100}
    return [
        EventTemplate("m.room.member", creator, {"membership": "join"}, state_key=creator),
        EventTemplate("m.room.power_levels", creator, {"users": users}, state_key=""),
        EventTemplate("m.room.join_rules", creator, {"join_rule": "public"}, state_key=""),
        EventTemplate(
            "m.room.history_visibility", creator, {"history_visibility": "shared"}, state_key=""
        ),
    ]


async def create_room(sender: RoomEventSender, version: RoomVersion) -> str:
    room_id, _ = await sender.create_room(
        room_version=version,
        creator=ALICE,
        create_content={},
        initial=initial_state(ALICE, version),
        room_id=None if version.room_id_from_create_event else f"!{secrets.token_hex(8)}:{SERVER}",
    )
    return room_id


def message(room_id: str, body: str, sender: str = ALICE) -> EventTemplate:
    return EventTemplate("m.room.message", sender, {"msgtype": "m.text", "body": body}, room_id)


@pytest.mark.parametrize("version", ["1", "3", "10", "11", "12"])
async def test_create_room_persists_signed_events_and_state(
    database: Database, version: str
) -> None:
    sender = await new_sender(database)
    room_version = KNOWN_ROOM_VERSIONS[version]
    room_id, created = await sender.create_room(
        room_version=room_version,
        creator=ALICE,
        create_content={},
        initial=initial_state(ALICE, room_version),
        room_id=None if room_version.room_id_from_create_event else f"!r:{SERVER}",
    )
    if room_version.room_id_from_create_event:
        assert room_id == "!" + created[0].event_id[1:]
    stored = await event_store.get_events(database, [e.event_id for e in created])
    assert [stored[e.event_id].pdu for e in created] == [e.pdu for e in created]
    for event in created:
        verify_event_signatures(event.pdu, room_version, {SERVER: {KEY.key_id: KEY.verify_key}})
    current = await state_store.get_current_state_ids(database, room_id)
    assert current == {(e.type, e.state_key or ""): e.event_id for e in created}
    groups = await state_store.get_event_state_groups(database, [created[-1].event_id])
    last_group = groups[created[-1].event_id]
    assert await state_store.get_state_group_state(database, last_group) == current
    assert await state_store.get_rooms_for_user(database, ALICE) == {room_id: "join"}


async def test_concurrent_sends_are_serialised_without_loss(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    sent = await asyncio.gather(*(sender.send(message(room_id, f"m{i}")) for i in range(60)))
    assert len({e.event_id for e in sent}) == 60
    stored = await event_store.get_events(database, [e.event_id for e in sent])
    by_stream = sorted(stored.values(), key=lambda s: s.stream_ordering)
    # a single chain: each event's only parent is the one persisted before it
    for before, after in itertools.pairwise(by_stream):
        assert after.pdu["prev_events"] == [before.event_id]
        assert after.pdu["depth"] == before.pdu["depth"] + 1
    extremities = await event_store.get_forward_extremities(database, room_id)
    assert [eid for eid, _ in extremities] == [by_stream[-1].event_id]


async def test_sends_to_different_rooms_interleave(database: Database) -> None:
    sender = await new_sender(database)
    rooms = [await create_room(sender, KNOWN_ROOM_VERSIONS["11"]) for _ in range(3)]
    await asyncio.gather(*(sender.send(message(r, f"{r}-{i}")) for i in range(10) for r in rooms))
    for room_id in rooms:
        extremities = await event_store.get_forward_extremities(database, room_id)
        assert len(extremities) == 1


async def test_refused_event_is_not_persisted_and_others_in_batch_are(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    results = await asyncio.gather(
        sender.send(message(room_id, "ok 1")),
        sender.send(message(room_id, "not a member", sender=BOB)),
        sender.send(message(room_id, "ok 2")),
        return_exceptions=True,
    )
    assert isinstance(results[1], AuthError)
    assert "rule" in str(results[1])
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(ok) == 2
    assert ok[1].prev_event_ids == [ok[0].event_id]
    assert await state_store.get_members(database, room_id) == {ALICE: "join"}


async def test_unknown_room(database: Database) -> None:
    sender = await new_sender(database)
    with pytest.raises(RoomNotFound):
        await sender.send(message(f"!nowhere:{SERVER}", "hello"))


async def test_transaction_ids_make_sends_idempotent_across_restarts(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    txn = (ALICE, "DEVICE", f"send/{room_id}/m.room.message", "txn-1")
    first, second = await asyncio.gather(
        sender.send(message(room_id, "once"), txn), sender.send(message(room_id, "once"), txn)
    )
    assert first.event_id == second.event_id
    restarted = await new_sender(database)
    again = await restarted.send(message(room_id, "once"), txn)
    assert again.event_id == first.event_id
    other_device = await restarted.send(
        message(room_id, "once"), (ALICE, "OTHER", f"send/{room_id}/m.room.message", "txn-1")
    )
    assert other_device.event_id != first.event_id


async def test_restart_continues_the_chain_and_stream(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["12"])
    last = await sender.send(message(room_id, "before restart"))
    restarted = await new_sender(database)
    after = await restarted.send(message(room_id, "after restart"))
    assert after.prev_event_ids == [last.event_id]
    stored = await event_store.get_events(database, [last.event_id, after.event_id])
    assert stored[after.event_id].stream_ordering > stored[last.event_id].stream_ordering
    assert restarted.positions.current == stored[after.event_id].stream_ordering


async def test_long_state_chains_snapshot(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_module, "MAX_STATE_CHAIN_LENGTH", 3)
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    for i in range(10):
        await sender.send(
            EventTemplate("m.room.topic", ALICE, {"topic": f"t{i}"}, room_id, state_key="")
        )
    last = await sender.send(
        EventTemplate("m.room.name", ALICE, {"name": "n"}, room_id, state_key="")
    )
    group = (await state_store.get_event_state_groups(database, [last.event_id]))[last.event_id]
    assert await state_store.get_state_group_chain_length(database, group) <= 3
    current = await state_store.get_current_state_ids(database, room_id)
    assert await state_store.get_state_group_state(database, group) == current
    assert current[("m.room.name", "")] == last.event_id


async def test_identical_creates_in_one_millisecond_get_distinct_room_ids(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the bench's concurrent createRoom found this: a v12 room ID is the create event's hash
    sender = await new_sender(database)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    version = KNOWN_ROOM_VERSIONS["12"]
    room_ids = await asyncio.gather(*(create_room(sender, version) for _ in range(3)))
    assert len(set(room_ids)) == 3


async def test_persisted_callback_sees_positions_in_order(database: Database) -> None:
    sender = await new_sender(database)
    seen: list[tuple[int, int]] = []

    async def record(events: Any, position: int) -> None:
        seen.append((len(events), position))

    sender.listeners.connect(persisted=[record])
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    await asyncio.gather(*(sender.send(message(room_id, str(i))) for i in range(5)))
    positions = [p for _, p in seen]
    assert positions == sorted(positions)
    assert sum(n for n, _ in seen) == 5 + 5  # the room's 5 initial events, then 5 messages


async def test_listeners_hear_a_batch_readers_first_and_before_the_send_answers(
    database: Database,
) -> None:
    sender = await new_sender(database)
    heard: list[str] = []

    def listener(name: str) -> Any:
        async def hear(events: Any, position: int) -> None:
            heard.append(name)

        return hear

    # listed in one place; the readable ones run first whatever else is listed
    sender.listeners.connect(
        persisted=[listener("bookkeeping")], readable=[listener("cache"), listener("wake")]
    )
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    heard.clear()
    await sender.send(message(room_id, "hi"))
    assert heard == ["cache", "wake", "bookkeeping"]
    # the order is decided once: a late listener would run in no known place
    with pytest.raises(RuntimeError):
        sender.listeners.connect(persisted=[listener("late")])
