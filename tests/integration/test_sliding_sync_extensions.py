"""Sliding sync's extensions (MSC4186 with MSC3884/3885/3959/3960/3961) over real HTTP on
both engines, as a client sees them: to-device messages handed out and acknowledged by the
next request's `since`, key counts and device list changes, account data, and receipts and
typing for the rooms the extension's `lists` and `rooms` pick."""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any

import pytest

from tests.integration.client import Reply
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, register
from tests.integration.test_e2e_keys import OTK, Device

CLIENT = "/_matrix/client/v3"
SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
JsonDict = dict[str, Any]

server = module_server(**REGISTRATION_CONFIG)

_counter = iter(range(1_000_000))


def new_user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}{next(_counter)}")


def slide(
    server: RunningServer,
    session: Session,
    extensions: JsonDict,
    *,
    pos: str | None = None,
    timeout: int | None = None,
    lists: JsonDict | None = None,
    subscriptions: JsonDict | None = None,
    conn_id: str | None = None,
) -> Reply:
    """One sliding sync request; by default one list of all the user's rooms, with
    neither state nor timeline (the extensions are what these tests look at)."""
    query = {
        **({"pos": pos} if pos is not None else {}),
        **({"timeout": str(timeout)} if timeout is not None else {}),
    }
    body: JsonDict = {
        "lists": (
            lists
            if lists is not None
            else {"all": {"ranges": [[0, 19]], "required_state": [], "timeline_limit": 0}}
        ),
        "room_subscriptions": subscriptions or {},
        "extensions": extensions,
        **({"conn_id": conn_id} if conn_id is not None else {}),
    }
    url = f"{server.url}{SLIDING_SYNC}?{urllib.parse.urlencode(query)}"
    return authed(session, "POST", url, body)


def slid(server: RunningServer, session: Session, extensions: JsonDict, **kwargs: Any) -> Any:
    reply = slide(server, session, extensions, **kwargs)
    assert reply.status == 200, reply.body
    return reply.json()


def post(server: RunningServer, session: Session, path: str, body: JsonDict) -> Any:
    reply = authed(session, "POST", server.url + CLIENT + path, body)
    assert reply.status == 200, reply.body
    return reply.json()


def put(server: RunningServer, session: Session, path: str, body: JsonDict) -> None:
    reply = authed(session, "PUT", server.url + CLIENT + path, body)
    assert reply.status == 200, reply.body


def shared_room(server: RunningServer, creator: Session, *others: Session) -> str:
    room_id: str = post(server, creator, "/createRoom", {"preset": "public_chat"})["room_id"]
    for other in others:
        post(server, other, f"/join/{room_id}", {})
    return room_id


def send_to_device(server: RunningServer, sender: Session, to: Session, txn: str, n: int) -> None:
    messages = {"messages": {to.user_id: {to.device_id: {"n": n}}}}
    put(server, sender, f"/sendToDevice/m.test/{txn}", messages)


def numbers(extension: JsonDict) -> list[int]:
    return [e["content"]["n"] for e in extension["events"]]


TO_DEVICE: JsonDict = {"enabled": True}


def test_absent_or_disabled_extensions_answer_nothing(server: RunningServer) -> None:
    alice = new_user(server, "alice")
    assert slid(server, alice, {})["extensions"] == {}
    off = {"to_device": {"enabled": False}, "e2ee": {}, "typing": {"enabled": False}}
    assert slid(server, alice, off)["extensions"] == {}


@pytest.mark.parametrize(
    "extensions",
    [
        {"to_device": {"enabled": True, "since": 3}},
        {"to_device": {"enabled": True, "since": "not a batch"}},
        {"to_device": {"enabled": True, "limit": 0}},
        {"e2ee": {"enabled": "yes"}},
        {"receipts": {"enabled": True, "lists": "all"}},
        {"typing": "on"},
    ],
)
def test_malformed_extensions_are_refused(server: RunningServer, extensions: JsonDict) -> None:
    reply = slide(server, new_user(server, "alice"), extensions)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply.body


def test_to_device_delivered_until_acknowledged_then_deleted(server: RunningServer) -> None:
    alice, bob = new_user(server, "alice"), new_user(server, "bob")
    start = slid(server, bob, {"to_device": TO_DEVICE})["extensions"]["to_device"]
    assert start["events"] == []
    for n in range(3):
        send_to_device(server, alice, bob, f"t{n}", n)

    ask = {"to_device": {"enabled": True, "since": start["next_batch"], "limit": 2}}
    first = slid(server, bob, ask)["extensions"]["to_device"]
    assert first["events"][0] == {"type": "m.test", "sender": alice.user_id, "content": {"n": 0}}
    assert numbers(first) == [0, 1]
    # the response was lost: the client asks again from the same `since`, and loses nothing
    assert slid(server, bob, ask)["extensions"]["to_device"] == first
    ask_more = {"to_device": {"enabled": True, "since": first["next_batch"]}}
    rest = slid(server, bob, ask_more)["extensions"]["to_device"]
    assert numbers(rest) == [2]
    # acknowledged: never handed out again, even to a request without `since`
    done = slid(server, bob, {"to_device": {"enabled": True, "since": rest["next_batch"]}})
    assert done["extensions"]["to_device"] == {"next_batch": rest["next_batch"], "events": []}
    assert slid(server, bob, {"to_device": TO_DEVICE})["extensions"]["to_device"]["events"] == []


def test_to_device_wakes_a_waiting_request(server: RunningServer) -> None:
    alice, bob = new_user(server, "alice"), new_user(server, "bob")
    first = slid(server, bob, {"to_device": TO_DEVICE})
    since = first["extensions"]["to_device"]["next_batch"]
    result: JsonDict = {}

    def wait() -> None:
        started = time.monotonic()
        ask = {"to_device": {"enabled": True, "since": since}}
        result["body"] = slid(server, bob, ask, pos=first["pos"], timeout=8000)
        result["took"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    send_to_device(server, alice, bob, "wake", 7)
    waiter.join(15)
    # answered with the message, well before the timeout, whether it was already
    # waiting when the message came or not
    assert numbers(result["body"]["extensions"]["to_device"]) == [7]
    assert result["took"] < 6


def test_e2ee_key_counts_and_device_list_changes(server: RunningServer) -> None:
    alice = Device(new_user(server, "alice"))
    bob, carol = Device(new_user(server, "bob")), new_user(server, "carol")
    shared_room(server, alice.session, bob.session)
    e2ee = {"e2ee": {"enabled": True}}
    post(
        server,
        bob.session,
        "/keys/upload",
        {
            "device_keys": bob.device_keys(),
            "one_time_keys": {f"{OTK}:{n}": bob.one_time_key(n) for n in range(2)},
            "fallback_keys": {f"{OTK}:F": bob.one_time_key(99, fallback=True)},
        },
    )
    bob_first = slid(server, bob.session, e2ee)
    assert bob_first["extensions"]["e2ee"] == {
        "device_one_time_keys_count": {OTK: 2},
        "device_unused_fallback_key_types": [OTK],
    }
    carol_first = slid(server, carol, e2ee)
    assert carol_first["extensions"]["e2ee"]["device_one_time_keys_count"] == {}

    post(server, alice.session, "/keys/upload", {"device_keys": alice.device_keys()})
    bob_later = slid(server, bob.session, e2ee, pos=bob_first["pos"])["extensions"]["e2ee"]
    assert bob_later["device_lists"] == {"changed": [alice.user_id], "left": []}
    assert bob_later["device_one_time_keys_count"] == {OTK: 2}
    # carol shares no room with alice: not told
    carol_later = slid(server, carol, e2ee, pos=carol_first["pos"])["extensions"]["e2ee"]
    assert "device_lists" not in carol_later


def test_account_data_global_and_for_rooms_in_scope(server: RunningServer) -> None:
    bob = new_user(server, "bob")
    listed, other = shared_room(server, bob), shared_room(server, bob)
    put(server, bob, f"/user/{bob.user_id}/account_data/org.example.global", {"v": 1})
    for room_id in (listed, other):
        path = f"/user/{bob.user_id}/rooms/{room_id}/account_data/org.example.room"
        put(server, bob, path, {"in": room_id})
    # account data for the subscription only, though the list shows both rooms
    scoped = {"account_data": {"enabled": True, "lists": [], "rooms": ["*"]}}
    subscriptions = {listed: {"required_state": [], "timeline_limit": 0}}
    first = slid(server, bob, scoped, subscriptions=subscriptions)
    account_data = first["extensions"]["account_data"]
    assert {"type": "org.example.global", "content": {"v": 1}} in account_data["global"]
    # the push rules come with the global account data, as on /sync
    assert "m.push_rules" in {e["type"] for e in account_data["global"]}
    assert account_data["rooms"] == {
        listed: [{"type": "org.example.room", "content": {"in": listed}}]
    }
    # (another connection: a request without `pos` starts its connection afresh)
    everything = slid(server, bob, {"account_data": {"enabled": True}}, conn_id="all")
    assert set(everything["extensions"]["account_data"]["rooms"]) == {listed, other}

    put(server, bob, f"/user/{bob.user_id}/account_data/org.example.global", {"v": 2})
    later = slid(server, bob, scoped, pos=first["pos"], subscriptions=subscriptions)
    assert later["extensions"]["account_data"] == {
        "global": [{"type": "org.example.global", "content": {"v": 2}}],
        "rooms": {},
    }


def test_receipts_and_typing_for_rooms_in_scope(server: RunningServer) -> None:
    alice, bob = new_user(server, "alice"), new_user(server, "bob")
    first_room, second_room = (shared_room(server, alice, bob) for _ in range(2))
    events = {
        room_id: post(
            server,
            alice,
            f"/rooms/{room_id}/send/m.room.message",
            {"msgtype": "m.text", "body": "hi"},
        )["event_id"]
        for room_id in (first_room, second_room)
    }
    for room_id, event_id in events.items():
        post(server, alice, f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    put(server, alice, f"/rooms/{second_room}/typing/{alice.user_id}", {"typing": True})

    everything = {"receipts": {"enabled": True}, "typing": {"enabled": True}}
    first = slid(server, bob, everything)["extensions"]
    assert set(first["receipts"]["rooms"]) == {first_room, second_room}
    receipt = first["receipts"]["rooms"][first_room]
    assert receipt["type"] == "m.receipt"
    assert alice.user_id in receipt["content"][events[first_room]]["m.read"]
    assert first["typing"]["rooms"] == {
        second_room: {"type": "m.typing", "content": {"user_ids": [alice.user_id]}}
    }

    # only the subscription to the first room, none of the list
    subscriptions = {first_room: {"required_state": [], "timeline_limit": 0}}
    only_first = {
        "receipts": {"enabled": True, "lists": [], "rooms": [first_room]},
        "typing": {"enabled": True, "lists": [], "rooms": ["*"]},
    }
    scoped = slid(server, bob, only_first, subscriptions=subscriptions)
    assert set(scoped["extensions"]["receipts"]["rooms"]) == {first_room}
    assert scoped["extensions"]["typing"] == {"rooms": {}}

    # later: only what changed since the position
    put(server, alice, f"/rooms/{first_room}/typing/{alice.user_id}", {"typing": True})
    later = slid(server, bob, everything, pos=scoped["pos"], subscriptions=subscriptions)
    extensions = later["extensions"]
    assert extensions["receipts"] == {"rooms": {}}
    assert extensions["typing"]["rooms"] == {
        first_room: {"type": "m.typing", "content": {"user_ids": [alice.user_id]}}
    }


def test_a_room_entering_the_window_brings_its_receipts_and_account_data(
    server: RunningServer,
) -> None:
    alice, bob = new_user(server, "alice"), new_user(server, "bob")
    older, newer = (shared_room(server, alice, bob) for _ in range(2))
    for room_id in (older, newer):
        event_id = post(
            server,
            alice,
            f"/rooms/{room_id}/send/m.room.message",
            {"msgtype": "m.text", "body": "x"},
        )["event_id"]
        post(server, alice, f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
        put(server, bob, f"/user/{bob.user_id}/rooms/{room_id}/tags/u.work", {"order": 0.5})
    # a window of one room: the most recent
    window = {"top": {"ranges": [[0, 0]], "required_state": [], "timeline_limit": 1}}
    wanted = {"receipts": {"enabled": True}, "account_data": {"enabled": True}}
    first = slid(server, bob, wanted, lists=window)
    assert list(first["rooms"]) == [newer]
    assert set(first["extensions"]["receipts"]["rooms"]) == {newer}
    assert set(first["extensions"]["account_data"]["rooms"]) == {newer}

    # a message moves the older room to the top: it is new to the connection, so its
    # receipts and tags come whole, though none changed since the position
    post(server, alice, f"/rooms/{older}/send/m.room.message", {"msgtype": "m.text", "body": "y"})
    later = slid(server, bob, wanted, lists=window, pos=first["pos"])
    assert older in later["rooms"]
    assert set(later["extensions"]["receipts"]["rooms"]) == {older}
    assert later["extensions"]["account_data"]["rooms"][older] == [
        {"type": "m.tag", "content": {"tags": {"u.work": {"order": 0.5}}}}
    ]
