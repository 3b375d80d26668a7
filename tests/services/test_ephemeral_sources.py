"""Typing, receipts, presence and to-device as sync sources, on both engines: what each
hands /sync between two positions, and what it tells the notifier."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services import presence as presence_module
from ranvier.services.account_data import AccountDataService
from ranvier.services.presence import PresenceService, timed_out
from ranvier.services.receipts import ReceiptService
from ranvier.services.to_device import MAX_PER_SYNC, ToDeviceService
from ranvier.services.typing import TypingService
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database
from ranvier.storage.device_inbox import DeviceInboxStore
from ranvier.storage.devices import DeviceStore
from ranvier.storage.presence import PresenceState, PresenceStore
from ranvier.storage.receipts import ReceiptStore
from ranvier.storage.users import UserStore
from tests.services.test_room_sender import ALICE, BOB, SERVER, create_room, new_sender

CAROL = f"@carol:{SERVER}"
ROOM = f"!room:{SERVER}"


class Recorder:
    """A notify callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, set[str], set[str]]] = []

    def __call__(
        self, stream: str, position: int, *, rooms: Iterable[str] = (), users: Iterable[str] = ()
    ) -> None:
        self.calls.append((stream, position, set(rooms), set(users)))


async def always_joined(room_id: str, user_id: str) -> bool:
    return True


async def never_joined(room_id: str, user_id: str) -> bool:
    return False


# -- typing -------------------------------------------------------------------------------


async def test_typing_appears_changes_and_expires() -> None:
    notify = Recorder()
    typing = TypingService(always_joined, notify)
    await typing.set_typing(ALICE, ALICE, ROOM, typing=True, timeout_ms=100)
    first = typing.current_position()
    assert notify.calls == [("typing", first, {ROOM}, set())]
    assert await typing.get_updates(BOB, None, [ROOM], 0, first) == {
        ROOM: {"type": "m.typing", "content": {"user_ids": [ALICE]}}
    }
    # nothing new since: no event
    assert await typing.get_updates(BOB, None, [ROOM], first, first) == {}
    # renewing the timeout is invisible
    await typing.set_typing(ALICE, ALICE, ROOM, typing=True, timeout_ms=100)
    assert typing.current_position() == first
    await asyncio.sleep(0.3)
    expired = typing.current_position()
    assert expired > first
    assert notify.calls[-1] == ("typing", expired, {ROOM}, set())
    assert await typing.get_updates(BOB, None, [ROOM], first, expired) == {
        ROOM: {"type": "m.typing", "content": {"user_ids": []}}
    }
    # an initial sync does not mention rooms where nobody types
    assert await typing.get_updates(BOB, None, [ROOM], 0, expired) == {}


async def test_typing_stops_and_ignores_other_rooms() -> None:
    typing = TypingService(always_joined, Recorder())
    await typing.set_typing(ALICE, ALICE, ROOM, typing=True, timeout_ms=30_000)
    await typing.set_typing(BOB, BOB, ROOM, typing=True, timeout_ms=30_000)
    both = typing.current_position()
    assert (await typing.get_updates(CAROL, None, [ROOM], 0, both))[ROOM]["content"] == {
        "user_ids": sorted([ALICE, BOB])
    }
    await typing.set_typing(ALICE, ALICE, ROOM, typing=False, timeout_ms=None)
    stopped = typing.current_position()
    assert await typing.get_updates(CAROL, None, [ROOM], both, stopped) == {
        ROOM: {"type": "m.typing", "content": {"user_ids": [BOB]}}
    }
    assert await typing.get_updates(CAROL, None, ["!other:x"], 0, stopped) == {}
    # a token from before a restart (ahead of the counter) reads as an initial sync
    assert ROOM in await typing.get_updates(CAROL, None, [ROOM], stopped + 50, stopped)
    typing.stop()


async def test_typing_only_for_oneself_and_in_joined_rooms() -> None:
    with pytest.raises(MatrixError) as other:
        await TypingService(always_joined, Recorder()).set_typing(
            ALICE, BOB, ROOM, typing=True, timeout_ms=None
        )
    assert (other.value.status, other.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(MatrixError) as outside:
        await TypingService(never_joined, Recorder()).set_typing(
            ALICE, ALICE, ROOM, typing=True, timeout_ms=None
        )
    assert (outside.value.status, outside.value.errcode) == (403, "M_FORBIDDEN")


# -- receipts -----------------------------------------------------------------------------


async def new_receipts(database: Database, notify: Recorder) -> ReceiptService:
    account_data = AccountDataService(AccountDataStore(database))
    return await ReceiptService.create(ReceiptStore(database), account_data, always_joined, notify)


async def test_receipts_private_only_to_owner_and_threaded(database: Database) -> None:
    notify = Recorder()
    receipts = await new_receipts(database, notify)
    heard: list[tuple[str, str, str, str | None]] = []

    async def listener(user_id: str, room_id: str, event_id: str, thread: str | None) -> None:
        heard.append((user_id, room_id, event_id, thread))

    receipts.on_receipt.append(listener)
    await receipts.send_receipt(ALICE, ROOM, "m.read", "$one")
    await receipts.send_receipt(BOB, ROOM, "m.read.private", "$two")
    await receipts.send_receipt(ALICE, ROOM, "m.read", "$three", "$root")
    top = receipts.current_position()
    assert top == 3
    assert [call[0] for call in notify.calls] == ["receipts"] * 3
    # the private receipt wakes only its owner
    assert notify.calls[1][2:] == (set(), {BOB})
    assert heard[2] == (ALICE, ROOM, "$three", "$root")

    as_alice = await receipts.get_updates(ALICE, None, [ROOM], 0, top)
    content = as_alice[ROOM]["content"]
    assert as_alice[ROOM]["type"] == "m.receipt"
    assert set(content) == {"$one", "$three"}
    assert "thread_id" not in content["$one"]["m.read"][ALICE]
    assert content["$three"]["m.read"][ALICE]["thread_id"] == "$root"
    assert isinstance(content["$one"]["m.read"][ALICE]["ts"], int)

    as_bob = await receipts.get_updates(BOB, None, [ROOM], 0, top)
    assert as_bob[ROOM]["content"]["$two"]["m.read.private"][BOB]["ts"] > 0

    # incremental: only what moved after the position
    await receipts.send_receipt(ALICE, ROOM, "m.read", "$four", "main")
    later = await receipts.get_updates(BOB, None, [ROOM], top, receipts.current_position())
    assert later == {
        ROOM: {
            "type": "m.receipt",
            "content": {
                "$four": {"m.read": {ALICE: later[ROOM]["content"]["$four"]["m.read"][ALICE]}}
            },
        }
    }
    assert later[ROOM]["content"]["$four"]["m.read"][ALICE]["thread_id"] == "main"
    # a room the user is not asking about is left out
    assert await receipts.get_updates(BOB, None, ["!elsewhere:x"], 0, top) == {}


async def test_receipt_moves_replace_the_old_one(database: Database) -> None:
    receipts = await new_receipts(database, Recorder())
    await receipts.send_receipt(ALICE, ROOM, "m.read", "$one")
    await receipts.send_receipt(ALICE, ROOM, "m.read", "$two")
    events = await receipts.get_updates(BOB, None, [ROOM], 0, receipts.current_position())
    assert set(events[ROOM]["content"]) == {"$two"}


async def test_fully_read_is_account_data_not_a_receipt(database: Database) -> None:
    await UserStore(database).create_user(ALICE, password_hash=None, creation_ts=1)
    notify = Recorder()
    receipts = await new_receipts(database, notify)
    await receipts.send_receipt(ALICE, ROOM, "m.fully_read", "$marker")
    await receipts.set_read_markers(ALICE, ROOM, "$marker2", "$read", "$private")
    store = AccountDataStore(database)
    assert await store.get_room(ALICE, ROOM, "m.fully_read") == {"event_id": "$marker2"}
    assert [call[0] for call in notify.calls] == [
        "account_data",
        "account_data",
        "receipts",
        "receipts",
    ]
    events = await receipts.get_updates(ALICE, None, [ROOM], 0, receipts.current_position())
    assert set(events[ROOM]["content"]) == {"$read", "$private"}


@pytest.mark.parametrize(
    ("receipt_type", "event_id", "thread_id"),
    [
        ("m.unknown", "$e", None),
        ("m.read", "e", None),
        # a thread_id of the wrong type or empty is refused where the body is read
        # (tests/integration/test_body_refusals_e2ee_user_data.py)
        ("m.fully_read", "$e", "main"),
    ],
)
async def test_bad_receipts_are_refused(
    database: Database, receipt_type: str, event_id: str, thread_id: Any
) -> None:
    receipts = await new_receipts(database, Recorder())
    with pytest.raises(MatrixError) as refused:
        await receipts.send_receipt(ALICE, ROOM, receipt_type, event_id, thread_id)
    assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")
    assert receipts.current_position() == 0


# -- to-device ----------------------------------------------------------------------------


async def with_devices(database: Database, *devices: tuple[str, str]) -> None:
    users, device_store = UserStore(database), DeviceStore(database)
    for user_id in {user for user, _ in devices}:
        await users.create_user(user_id, password_hash=None, creation_ts=1)
    for user_id, device_id in devices:
        await device_store.ensure_device(user_id, device_id, None, 1)


async def test_to_device_delivered_once_and_deleted_on_ack(database: Database) -> None:
    await with_devices(database, (ALICE, "A1"), (BOB, "B1"), (BOB, "B2"))
    notify = Recorder()
    to_device = await ToDeviceService.create(DeviceInboxStore(database), SERVER, notify)
    messages: dict[str, dict[str, dict[str, Any]]] = {
        BOB: {"B1": {"n": 1}, "NOPE": {"n": 0}},
        "@remote:elsewhere.example": {"X": {"n": 9}},
    }
    await to_device.send(ALICE, "A1", "m.test", "txn1", messages)
    first = to_device.current_position()
    assert notify.calls == [("to_device", first, set(), {BOB})]
    # the same transaction again is the same request: nothing new
    await to_device.send(ALICE, "A1", "m.test", "txn1", messages)
    assert to_device.current_position() == first
    # a wildcard reaches every device of the user
    await to_device.send(ALICE, "A1", "m.test", "txn2", {BOB: {"*": {"n": 2}}})
    top = to_device.current_position()

    b1 = await to_device.get_updates(BOB, "B1", [], 0, top)
    assert b1 == [
        {"type": "m.test", "sender": ALICE, "content": {"n": 1}},
        {"type": "m.test", "sender": ALICE, "content": {"n": 2}},
    ]
    assert await to_device.get_updates(BOB, "B2", [], 0, top) == [
        {"type": "m.test", "sender": ALICE, "content": {"n": 2}}
    ]
    # a retried sync (same since, not yet acknowledged) gets them again
    assert await to_device.get_updates(BOB, "B1", [], 0, top) == b1
    # syncing with the token past them acknowledges and deletes them
    await to_device.ack(BOB, "B1", top)
    assert await to_device.get_updates(BOB, "B1", [], 0, top) == []
    assert await to_device.get_updates(BOB, "B1", [], top, top) == []
    # B2 has not acknowledged
    assert len(await to_device.get_updates(BOB, "B2", [], 0, top)) == 1
    assert await to_device.get_updates(BOB, None, [], 0, top) == []


async def test_to_device_limit_per_sync_keeps_the_rest(database: Database) -> None:
    await with_devices(database, (ALICE, "A1"), (BOB, "B1"))
    to_device = await ToDeviceService.create(DeviceInboxStore(database), SERVER, Recorder())
    total = MAX_PER_SYNC + 20
    for n in range(total):
        await to_device.send(ALICE, "A1", "m.test", f"t{n}", {BOB: {"B1": {"n": n}}})
    top = to_device.current_position()
    first = await to_device.get_updates(BOB, "B1", [], 0, top)
    assert [m["content"]["n"] for m in first] == list(range(MAX_PER_SYNC))
    # the token of that response stops at the last message handed out
    assert first.position < top
    # the next sync carries that token: the rest, nothing twice
    await to_device.ack(BOB, "B1", first.position)
    rest = await to_device.get_updates(BOB, "B1", [], first.position, top)
    assert [m["content"]["n"] for m in rest] == list(range(MAX_PER_SYNC, total))
    assert rest.position == top
    await to_device.ack(BOB, "B1", rest.position)
    assert await to_device.get_updates(BOB, "B1", [], 0, top) == []


async def test_to_device_txn_ids_are_per_device_and_event_type(database: Database) -> None:
    await with_devices(database, (ALICE, "A1"), (ALICE, "A2"), (BOB, "B1"))
    to_device = await ToDeviceService.create(DeviceInboxStore(database), SERVER, Recorder())
    for device, event_type in [("A1", "m.a"), ("A2", "m.a"), ("A1", "m.b")]:
        await to_device.send(ALICE, device, event_type, "same", {BOB: {"B1": {}}})
    top = to_device.current_position()
    assert len(await to_device.get_updates(BOB, "B1", [], 0, top)) == 3


# -- presence -----------------------------------------------------------------------------


def test_presence_timeouts() -> None:
    start = 1_000_000
    online = PresenceState(ALICE, "online", None, start, start, True)
    assert timed_out(online, start + 1000) is None
    # still syncing, not active for a minute: no longer currently active
    idle = start + presence_module.CURRENTLY_ACTIVE_MS + 1
    synced = replace(online, last_user_sync_ts=idle)
    assert timed_out(synced, idle) == replace(synced, currently_active=False)
    # still syncing but idle: unavailable
    syncing = replace(online, last_user_sync_ts=start + presence_module.IDLE_TIMEOUT_MS)
    moved = timed_out(syncing, start + presence_module.IDLE_TIMEOUT_MS + 1)
    assert moved is not None and (moved.state, moved.currently_active) == ("unavailable", False)
    # no sync for a while: offline
    gone = timed_out(online, start + presence_module.SYNC_ONLINE_TIMEOUT_MS + 1)
    assert gone is not None and gone.state == "offline"
    assert timed_out(replace(online, state="offline"), start * 2) is None


async def test_presence_reaches_users_sharing_a_room(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    await sender.send(EventTemplate("m.room.member", BOB, {"membership": "join"}, room_id, BOB))

    async def joined_rooms(user_id: str) -> list[str]:
        return [room_id] if user_id in (ALICE, BOB) else []

    async def shares_room(a: str, b: str) -> bool:
        return {a, b} <= {ALICE, BOB}

    notify = Recorder()
    presence = await PresenceService.create(
        PresenceStore(database), shares_room, joined_rooms, notify, server_name=SERVER, enabled=True
    )
    await presence.set_status(ALICE, ALICE, "online", "here")
    await presence.set_status(CAROL, CAROL, "unavailable", None)
    top = presence.current_position()
    assert notify.calls[0] == ("presence", 1, {room_id}, {ALICE})

    events = await presence.get_updates(BOB, None, [room_id], 0, top)
    assert [(e["sender"], e["content"]["presence"]) for e in events] == [(ALICE, "online")]
    assert events[0]["type"] == "m.presence"
    assert events[0]["content"]["status_msg"] == "here"
    assert events[0]["content"]["currently_active"] is True
    # carol shares no room with bob, but sees herself
    own = await presence.get_updates(CAROL, None, [], 0, top)
    assert [e["sender"] for e in own] == [CAROL]

    assert (await presence.get_status(BOB, ALICE))["presence"] == "online"
    with pytest.raises(MatrixError) as stranger:
        await presence.get_status(CAROL, ALICE)
    assert (stranger.value.status, stranger.value.errcode) == (403, "M_FORBIDDEN")

    # the timeouts move alice offline once she stops syncing, and bob hears of it
    await presence.apply_timeouts(10**13)
    moved = await presence.get_updates(BOB, None, [room_id], top, presence.current_position())
    assert [(e["sender"], e["content"]["presence"]) for e in moved] == [(ALICE, "offline")]
    assert (await presence.get_status(ALICE, ALICE))["presence"] == "offline"


async def test_presence_from_sync(database: Database) -> None:
    async def nobody(user_id: str) -> list[str]:
        return []

    async def shares(a: str, b: str) -> bool:
        return False

    presence = await PresenceService.create(
        PresenceStore(database), shares, nobody, Recorder(), server_name=SERVER, enabled=True
    )
    await presence.set_presence_from_sync(ALICE, "offline")
    assert (await presence.get_status(ALICE, ALICE))["presence"] == "offline"
    await presence.set_presence_from_sync(ALICE, "online")
    assert (await presence.get_status(ALICE, ALICE))["presence"] == "online"
    await presence.set_status(ALICE, ALICE, "unavailable", None)
    # a chosen "unavailable" is not overridden by syncing
    await presence.set_presence_from_sync(ALICE, "online")
    assert (await presence.get_status(ALICE, ALICE))["presence"] == "unavailable"
    before = presence.current_position()
    # syncing again changes nothing visible: no new position
    await presence.set_presence_from_sync(ALICE, "unavailable")
    assert presence.current_position() == before
    # the state survives a restart
    again = await PresenceService.create(
        PresenceStore(database), shares, nobody, Recorder(), server_name=SERVER, enabled=True
    )
    assert (await again.get_status(ALICE, ALICE))["presence"] == "unavailable"
    assert again.current_position() == before


async def test_presence_disabled_records_nothing(database: Database) -> None:
    async def nobody(user_id: str) -> list[str]:
        return []

    async def shares(a: str, b: str) -> bool:
        return True

    presence = await PresenceService.create(
        PresenceStore(database), shares, nobody, Recorder(), server_name=SERVER, enabled=False
    )
    await presence.set_status(ALICE, ALICE, "online", "hi")
    await presence.set_presence_from_sync(ALICE, "online")
    assert await presence.get_status(BOB, ALICE) == {"presence": "offline"}
    assert presence.current_position() == 0
    assert await presence.get_updates(BOB, None, [ROOM], 0, 10) == []


async def test_activity_brings_an_idle_user_back_online(database: Database) -> None:
    async def nobody(user_id: str) -> list[str]:
        return []

    async def shares(a: str, b: str) -> bool:
        return False

    presence = await PresenceService.create(
        PresenceStore(database), shares, nobody, Recorder(), server_name=SERVER, enabled=True
    )
    await presence.set_status(ALICE, ALICE, "unavailable", None)
    await presence.set_presence_from_sync(ALICE, "online")
    assert (await presence.get_status(ALICE, ALICE))["presence"] == "unavailable"
    # typing, reading or sending counts as activity
    typing = TypingService(always_joined, Recorder(), presence.bump_active)
    await typing.set_typing(ALICE, ALICE, ROOM, typing=True, timeout_ms=1000)
    status = await presence.get_status(ALICE, ALICE)
    assert status["presence"] == "online" and status["currently_active"] is True
    typing.stop()
    # sending an event: only local senders count
    await presence.set_status(BOB, BOB, "unavailable", None)
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    await sender.send(EventTemplate("m.room.member", BOB, {"membership": "join"}, room_id, BOB))
    events = [await sender.send(EventTemplate("m.room.message", BOB, {"body": "hi"}, room_id))]
    await presence.on_persisted(events, 0)
    assert (await presence.get_status(BOB, BOB))["presence"] == "online"


async def test_joining_a_room_announces_presence_and_leaving_stops_typing(
    database: Database,
) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])

    async def joined_rooms(user_id: str) -> list[str]:
        return [room_id]

    async def shares(a: str, b: str) -> bool:
        return True

    presence = await PresenceService.create(
        PresenceStore(database), shares, joined_rooms, Recorder(), server_name=SERVER, enabled=True
    )
    typing = TypingService(always_joined, Recorder())
    sender.listeners.connect(persisted=[presence.on_persisted, typing.on_persisted])
    await presence.set_status(BOB, BOB, "online", "new here")
    before = presence.current_position()
    await sender.send(EventTemplate("m.room.member", BOB, {"membership": "join"}, room_id, BOB))
    after = presence.current_position()
    assert after > before
    events = await presence.get_updates(ALICE, None, [room_id], before, after)
    assert [(e["sender"], e["content"]["status_msg"]) for e in events] == [(BOB, "new here")]

    await typing.set_typing(BOB, BOB, room_id, typing=True, timeout_ms=30_000)
    assert typing.typing_in(room_id) == [BOB]
    await sender.send(EventTemplate("m.room.member", BOB, {"membership": "leave"}, room_id, BOB))
    assert typing.typing_in(room_id) == []
    typing.stop()


async def test_to_device_txn_ids_are_forgotten_after_a_day(database: Database) -> None:
    await with_devices(database, (ALICE, "A1"), (BOB, "B1"))
    store = DeviceInboxStore(database)
    day = 24 * 60 * 60 * 1000
    first = await store.send(ALICE, "A1", "m.a", "t", 1_000, {BOB: {"B1": {}}})
    assert first.position is not None
    retry = await store.send(ALICE, "A1", "m.a", "t", 1_000 + day - 1, {BOB: {"B1": {}}})
    assert retry.position is None
    much_later = await store.send(ALICE, "A1", "m.a", "t", 2_000 + day, {BOB: {"B1": {}}})
    assert much_later.position is not None and much_later.recipients == {BOB}
