"""Sliding sync's extensions (services/sliding_sync/extensions.py) over the real stream
sources on both engines: what `build` answers a client for each extension, and that
to-device messages are acknowledged by the next request's `since`, never lost or resent."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from ranvier.errors import MatrixError
from ranvier.services.account_data import AccountDataService
from ranvier.services.sliding_sync.extensions import (
    ExtensionContext,
    SlidingSyncExtensions,
    has_news,
)
from ranvier.services.sync.account_data import AccountDataReader
from ranvier.services.to_device import ToDeviceService
from ranvier.services.typing import TypingService
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database
from ranvier.storage.device_inbox import DeviceInboxStore
from ranvier.storage.sync import UserMemberships
from ranvier.streams.sync_token import SyncToken
from tests.services.test_ephemeral_sources import (
    ALICE,
    BOB,
    SERVER,
    Recorder,
    always_joined,
    new_receipts,
    with_devices,
)

ROOM_A = f"!a:{SERVER}"
ROOM_B = f"!b:{SERVER}"
ROOM_C = f"!c:{SERVER}"
JsonDict = dict[str, Any]


def context(
    token: SyncToken,
    since: SyncToken | None = None,
    *,
    device_id: str | None = "B1",
    lists: dict[str, Sequence[str]] | None = None,
    subscribed: Sequence[str] = (),
    joined: Collection[str] = (ROOM_A, ROOM_B, ROOM_C),
    initial_rooms: Collection[str] = (),
) -> ExtensionContext:
    return ExtensionContext(
        user_id=BOB,
        device_id=device_id,
        from_token=since,
        to_token=token,
        list_rooms=lists if lists is not None else {"all": [ROOM_A, ROOM_B]},
        subscribed_rooms=subscribed,
        joined_rooms=joined,
        initial_rooms=initial_rooms,
    )


def extensions(database: Database, **sources: Any) -> SlidingSyncExtensions:
    given: dict[str, Any] = {
        "to_device": None,
        "device_lists": None,
        "account_data": None,
        "receipts": None,
        "typing": None,
    }
    given.update(sources)
    return SlidingSyncExtensions(database, **given)


async def test_nothing_asked_nothing_answered(database: Database) -> None:
    built = extensions(database)
    ctx = context(SyncToken())
    assert await built.build(ctx, None) == {}
    assert await built.build(ctx, {}) == {}
    # an extension is off unless enabled
    assert await built.build(ctx, {"to_device": {}, "typing": {"enabled": False}}) == {}


@pytest.mark.parametrize(
    "requested",
    [
        [],
        {"to_device": True},
        {"to_device": {"enabled": "yes"}},
        {"to_device": {"enabled": True, "since": 5}},
        {"to_device": {"enabled": True, "since": "abc"}},
        {"to_device": {"enabled": True, "limit": 0}},
        {"to_device": {"enabled": True, "limit": "10"}},
        {"receipts": {"enabled": True, "lists": "all"}},
        {"typing": {"enabled": True, "rooms": [1]}},
    ],
)
async def test_malformed_options_are_bad_json(database: Database, requested: Any) -> None:
    with pytest.raises(MatrixError) as refused:
        await extensions(database).build(context(SyncToken()), requested)
    assert (refused.value.status, refused.value.errcode) == (400, "M_BAD_JSON")


async def test_to_device_handed_out_in_batches_and_deleted_once_acknowledged(
    database: Database,
) -> None:
    await with_devices(database, (ALICE, "A1"), (BOB, "B1"), (BOB, "B2"))
    to_device = await ToDeviceService.create(DeviceInboxStore(database), SERVER, Recorder())
    built = extensions(database, to_device=to_device)
    for n in range(5):
        await to_device.send(ALICE, "A1", "m.test", f"t{n}", {BOB: {"B1": {"n": n}}})
    top = SyncToken(to_device=to_device.current_position())

    def ask(since: str | None = None, limit: int = 2) -> JsonDict:
        options: JsonDict = {"enabled": True, "limit": limit}
        if since is not None:
            options["since"] = since
        return {"to_device": options}

    first = (await built.build(context(top), ask()))["to_device"]
    assert [e["content"]["n"] for e in first["events"]] == [0, 1]
    assert [e["sender"] for e in first["events"]] == [ALICE, ALICE]
    # the response was lost: the same request (no since) gets the same messages
    again = (await built.build(context(top), ask()))["to_device"]
    assert again == first
    second = (await built.build(context(top), ask(first["next_batch"])))["to_device"]
    assert [e["content"]["n"] for e in second["events"]] == [2, 3]
    # a retry of that request with the same since: the same batch, nothing skipped
    retried = (await built.build(context(top), ask(first["next_batch"])))["to_device"]
    assert retried == second
    third = (await built.build(context(top), ask(second["next_batch"], 100)))["to_device"]
    assert [e["content"]["n"] for e in third["events"]] == [4]
    assert third["next_batch"] == str(top.to_device)
    # acknowledged up to the end: a request from scratch finds the inbox empty
    done = (await built.build(context(top), ask(third["next_batch"])))["to_device"]
    assert done == {"next_batch": str(top.to_device), "events": []}
    assert (await built.build(context(top), ask()))["to_device"]["events"] == []
    # another device's inbox is its own; a since from the future deletes nothing
    future = str(top.to_device + 10)
    as_b2 = (await built.build(context(top, device_id="B2"), ask(future)))["to_device"]
    assert as_b2 == {"next_batch": future, "events": []}
    assert not has_news({"to_device": as_b2})
    assert has_news({"to_device": first})


async def test_to_device_without_a_device_is_empty(database: Database) -> None:
    await with_devices(database, (ALICE, "A1"), (BOB, "B1"))
    to_device = await ToDeviceService.create(DeviceInboxStore(database), SERVER, Recorder())
    await to_device.send(ALICE, "A1", "m.test", "t", {BOB: {"B1": {}}})
    top = SyncToken(to_device=to_device.current_position())
    built = extensions(database, to_device=to_device)
    answer = await built.build(context(top, device_id=None), {"to_device": {"enabled": True}})
    assert answer == {"to_device": {"next_batch": str(top.to_device), "events": []}}


class FakeDeviceLists:
    """The device lists source's answers, recording what it was asked."""

    stream_name = "device_lists"

    def __init__(self) -> None:
        self.asked: list[tuple[SyncToken, int, int]] = []

    def current_position(self) -> int:
        return 7

    async def get_updates(
        self,
        user_id: str,
        memberships: UserMemberships,
        since: SyncToken,
        events_upto: int,
        to_pos: int,
        moved_rooms: set[str] | None = None,
    ) -> JsonDict | None:
        self.asked.append((since, events_upto, to_pos))
        return {"changed": [ALICE], "left": []}

    async def key_counts(self, user_id: str, device_id: str) -> JsonDict:
        return {
            "device_one_time_keys_count": {"signed_curve25519": 3},
            "device_unused_fallback_key_types": ["signed_curve25519"],
            "org.matrix.msc2732.device_unused_fallback_key_types": ["signed_curve25519"],
        }


async def test_e2ee_counts_always_device_lists_since_the_position(database: Database) -> None:
    device_lists = FakeDeviceLists()
    built = extensions(database, device_lists=device_lists)
    top = SyncToken(events=0, device_lists=7)
    requested = {"e2ee": {"enabled": True}}
    initial = (await built.build(context(top), requested))["e2ee"]
    assert initial == {
        "device_one_time_keys_count": {"signed_curve25519": 3},
        "device_unused_fallback_key_types": ["signed_curve25519"],
    }
    assert device_lists.asked == []
    since = SyncToken(device_lists=5)
    later = (await built.build(context(top, since), requested))["e2ee"]
    assert later["device_lists"] == {"changed": [ALICE], "left": []}
    assert device_lists.asked == [(since, 0, 7)]
    assert has_news({"e2ee": later}) and not has_news({"e2ee": initial})
    no_device = (await built.build(context(top, device_id=None), requested))["e2ee"]
    assert no_device == {"device_one_time_keys_count": {}, "device_unused_fallback_key_types": []}


async def test_account_data_global_and_for_rooms_in_scope(database: Database) -> None:
    await with_devices(database, (BOB, "B1"))
    account_data = AccountDataService(AccountDataStore(database))
    built = extensions(database, account_data=AccountDataReader(account_data))
    await account_data.set_global(BOB, BOB, "m.direct", {ALICE: [ROOM_A]})
    for room_id in (ROOM_A, ROOM_B, ROOM_C):
        await account_data.set_room(BOB, BOB, room_id, "org.example.note", {"in": room_id})
    first_top = SyncToken(account_data=await AccountDataStore(database).current_stream_position())
    requested: JsonDict = {"account_data": {"enabled": True}}
    initial = (await built.build(context(first_top), requested))["account_data"]
    assert initial["global"] == [{"type": "m.direct", "content": {ALICE: [ROOM_A]}}]
    # ROOM_C is in no list and not subscribed: none of its account data
    assert initial["rooms"] == {
        room_id: [{"type": "org.example.note", "content": {"in": room_id}}]
        for room_id in (ROOM_A, ROOM_B)
    }
    # only the subscriptions, by name
    scoped = {"account_data": {"enabled": True, "lists": [], "rooms": [ROOM_C, ROOM_A]}}
    only_c = await built.build(context(first_top, subscribed=[ROOM_C]), scoped)
    assert set(only_c["account_data"]["rooms"]) == {ROOM_C}

    await account_data.set_room(BOB, BOB, ROOM_B, "org.example.note", {"in": "changed"})
    top = SyncToken(account_data=await AccountDataStore(database).current_stream_position())
    later = (await built.build(context(top, first_top), requested))["account_data"]
    assert later == {
        "global": [],
        "rooms": {ROOM_B: [{"type": "org.example.note", "content": {"in": "changed"}}]},
    }
    # a room new to the connection gets all of its account data, changed or not
    fresh = await built.build(context(top, first_top, initial_rooms=[ROOM_A]), requested)
    assert set(fresh["account_data"]["rooms"]) == {ROOM_A, ROOM_B}
    quiet = (await built.build(context(top, top), requested))["account_data"]
    assert quiet == {"global": [], "rooms": {}}
    assert not has_news({"account_data": quiet}) and has_news({"account_data": later})


async def test_receipts_for_joined_rooms_in_scope(database: Database) -> None:
    receipts = await new_receipts(database, Recorder())
    built = extensions(database, receipts=receipts)
    for room_id in (ROOM_A, ROOM_B, ROOM_C):
        await receipts.send_receipt(ALICE, room_id, "m.read", f"$in{room_id}")
    await receipts.send_receipt(ALICE, ROOM_A, "m.read.private", "$private")
    first_top = SyncToken(receipts=receipts.current_position())
    requested: JsonDict = {"receipts": {"enabled": True}}
    initial = (await built.build(context(first_top), requested))["receipts"]["rooms"]
    assert set(initial) == {ROOM_A, ROOM_B}
    assert initial[ROOM_A]["type"] == "m.receipt"
    # Alice's private receipt is hers alone
    assert set(initial[ROOM_A]["content"]) == {f"$in{ROOM_A}"}
    # rooms the user is not joined to are left out even when a list shows them
    left_b = await built.build(context(first_top, joined=[ROOM_A]), requested)
    assert set(left_b["receipts"]["rooms"]) == {ROOM_A}
    # a named list only
    two_lists = {"one": [ROOM_A], "two": [ROOM_B]}
    named = {"receipts": {"enabled": True, "lists": ["two"], "rooms": []}}
    only_two = await built.build(context(first_top, lists=two_lists), named)
    assert set(only_two["receipts"]["rooms"]) == {ROOM_B}

    await receipts.send_receipt(ALICE, ROOM_B, "m.read", "$newer")
    top = SyncToken(receipts=receipts.current_position())
    later = (await built.build(context(top, first_top), requested))["receipts"]["rooms"]
    assert list(later) == [ROOM_B]
    assert set(later[ROOM_B]["content"]) == {"$newer"}
    # a room sent from scratch gets its receipts whole
    fresh = await built.build(context(top, first_top, initial_rooms=[ROOM_A]), requested)
    assert set(fresh["receipts"]["rooms"]) == {ROOM_A, ROOM_B}
    assert (await built.build(context(top, top), requested)) == {"receipts": {"rooms": {}}}


async def test_typing_for_joined_rooms_in_scope(database: Database) -> None:
    typing = TypingService(always_joined, Recorder())
    built = extensions(database, typing=typing)
    await typing.set_typing(ALICE, ALICE, ROOM_A, typing=True, timeout_ms=30_000)
    await typing.set_typing(ALICE, ALICE, ROOM_C, typing=True, timeout_ms=30_000)
    first_top = SyncToken(typing=typing.current_position())
    requested: JsonDict = {"typing": {"enabled": True}}
    initial = await built.build(context(first_top, subscribed=[ROOM_C]), requested)
    assert initial == {
        "typing": {
            "rooms": {
                room_id: {"type": "m.typing", "content": {"user_ids": [ALICE]}}
                for room_id in (ROOM_A, ROOM_C)
            }
        }
    }
    # subscriptions left out by the extension's own `rooms`
    lists_only = {"typing": {"enabled": True, "rooms": []}}
    answer = await built.build(context(first_top, subscribed=[ROOM_C]), lists_only)
    assert set(answer["typing"]["rooms"]) == {ROOM_A}
    await typing.set_typing(ALICE, ALICE, ROOM_A, typing=False, timeout_ms=None)
    top = SyncToken(typing=typing.current_position())
    later = await built.build(context(top, first_top, subscribed=[ROOM_C]), requested)
    assert later == {
        "typing": {"rooms": {ROOM_A: {"type": "m.typing", "content": {"user_ids": []}}}}
    }
    typing.stop()
