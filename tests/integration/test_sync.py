"""GET /sync over real HTTP on both engines: initial and incremental syncs, limited
timelines paging back through /messages, long-polls woken by the notifier, filters and
lazy loading, invite and leave sections, account data, ephemeral events and errors."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, register

CLIENT = "/_matrix/client/v3"


server = module_server(
    # these tests repeat identical requests and expect fresh answers; the response
    # cache is tested in test_sync_restart.py
    caches={"sync_response_cache_duration": 0},
    **REGISTRATION_CONFIG,
)


_counter = iter(range(10**9))


def user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}{next(_counter)}")


def sync_reply(
    server: RunningServer, who: Session, http_timeout: float = 15, **query: Any
) -> Reply:
    url = server.url + CLIENT + "/sync"
    if query:
        url += "?" + urllib.parse.urlencode(
            {k: json.dumps(v) if isinstance(v, dict) else v for k, v in query.items()}
        )
    req = urllib.request.Request(url, headers=who.headers)
    try:
        with urllib.request.urlopen(req, timeout=http_timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def sync(server: RunningServer, who: Session, **query: Any) -> dict[str, Any]:
    reply = sync_reply(server, who, **query)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def create_room(server: RunningServer, who: Session, **body: Any) -> str:
    reply = authed(who, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def room_url(server: RunningServer, room_id: str, tail: str) -> str:
    return f"{server.url}{CLIENT}/rooms/{urllib.parse.quote(room_id)}{tail}"


def say(server: RunningServer, who: Session, room_id: str, text: str) -> str:
    reply = authed(
        who,
        "PUT",
        room_url(server, room_id, f"/send/m.room.message/s{next(_counter)}"),
        {"msgtype": "m.text", "body": text},
    )
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def act(server: RunningServer, who: Session, room_id: str, tail: str, body: Any = None) -> None:
    reply = authed(who, "POST", room_url(server, room_id, tail), body or {})
    assert reply.status == 200, reply.body


def joined_room(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    room: dict[str, Any] = body["rooms"]["join"][room_id]
    return room


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


# --- initial and incremental ------------------------------------------------------------------


def test_initial_sync_shape(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice, name="Shape")
    say(server, alice, room_id, "hello")
    body = sync(server, alice, filter={"room": {"timeline": {"limit": 2}}})
    assert body["next_batch"].startswith("s")
    room = joined_room(body, room_id)
    timeline = room["timeline"]
    assert texts(timeline["events"]) == ["hello"]
    assert len(timeline["events"]) == 2 and timeline["limited"] is True
    assert isinstance(timeline["prev_batch"], str)
    message = timeline["events"][-1]
    # ClientEventWithoutRoomID, with the sending device's transaction ID
    assert "room_id" not in message and message["sender"] == alice.user_id
    assert message["unsigned"]["transaction_id"].startswith("s")
    # the state at the start of the timeline: the room's creation and its members
    state_types = {(e["type"], e["state_key"]) for e in room["state"]["events"]}
    assert ("m.room.create", "") in state_types
    assert ("m.room.member", alice.user_id) in state_types
    assert ("m.room.power_levels", "") in state_types
    assert room["summary"]["m.joined_member_count"] == 1
    assert room["summary"]["m.invited_member_count"] == 0
    assert room["unread_notifications"]["notification_count"] == 0
    assert room["ephemeral"] == {"events": []} or isinstance(room["ephemeral"]["events"], list)
    assert "events" in room["account_data"]


def test_incremental_sync_returns_exactly_the_new_events(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    say(server, alice, room_id, "before")
    token = sync(server, bob)["next_batch"]
    sent = [say(server, alice, room_id, f"m{i}") for i in range(3)]
    body = sync(server, bob, since=token)
    timeline = joined_room(body, room_id)["timeline"]
    assert [e["event_id"] for e in timeline["events"]] == sent
    assert timeline["limited"] is False
    # not the sender's device: no transaction IDs
    assert all("transaction_id" not in e["unsigned"] for e in timeline["events"])
    # no state before the timeline that bob does not have
    assert joined_room(body, room_id)["state"]["events"] == []
    again = sync(server, bob, since=body["next_batch"])
    assert room_id not in again.get("rooms", {}).get("join", {})
    # an old token still gives the same events again
    assert [
        e["event_id"]
        for e in joined_room(sync(server, bob, since=token), room_id)["timeline"]["events"]
    ] == sent


def test_limited_timeline_pages_back_through_messages_without_gaps(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice)
    say(server, alice, room_id, "old")
    token = sync(server, alice)["next_batch"]
    sent = [f"n{i}" for i in range(15)]
    for text in sent:
        say(server, alice, room_id, text)
    body = sync(server, alice, since=token, filter={"room": {"timeline": {"limit": 5}}})
    timeline = joined_room(body, room_id)["timeline"]
    assert texts(timeline["events"]) == sent[-5:]
    assert timeline["limited"] is True
    query = urllib.parse.urlencode({"from": timeline["prev_batch"], "dir": "b", "limit": 7})
    first = authed(alice, "GET", room_url(server, room_id, "/messages?" + query)).json()
    query = urllib.parse.urlencode({"from": first["end"], "dir": "b", "limit": 7})
    second = authed(alice, "GET", room_url(server, room_id, "/messages?" + query)).json()
    older = texts(first["chunk"]) + texts(second["chunk"])
    assert list(reversed(older))[-10:] == sent[:10]
    assert "old" in older
    # the next_batch token is a /messages token too
    query = urllib.parse.urlencode({"from": body["next_batch"], "dir": "b", "limit": 3})
    latest = authed(alice, "GET", room_url(server, room_id, "/messages?" + query)).json()
    assert texts(latest["chunk"]) == list(reversed(sent[-3:]))


def test_no_gaps_or_duplicates_while_rooms_are_written_concurrently(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    rooms = [create_room(server, alice, preset="public_chat") for _ in range(4)]
    for room_id in rooms:
        act(server, bob, room_id, "/join")
    token = sync(server, bob)["next_batch"]
    sent: list[str] = []
    lock = threading.Lock()

    def send_many(room_id: str) -> None:
        for i in range(8):
            event_id = say(server, alice, room_id, f"c{i}")
            with lock:
                sent.append(event_id)

    senders = [threading.Thread(target=send_many, args=(room_id,)) for room_id in rooms]
    for thread in senders:
        thread.start()
    seen: list[str] = []
    limit = {"room": {"timeline": {"limit": 100}}}
    while any(thread.is_alive() for thread in senders):
        body = sync(server, bob, since=token, filter=limit)
        token = body["next_batch"]
        for room in body.get("rooms", {}).get("join", {}).values():
            assert room["timeline"]["limited"] is False
            seen += [e["event_id"] for e in room["timeline"]["events"]]
    for thread in senders:
        thread.join()
    body = sync(server, bob, since=token, filter=limit)
    for room in body.get("rooms", {}).get("join", {}).values():
        seen += [e["event_id"] for e in room["timeline"]["events"]]
    assert sorted(seen) == sorted(sent) and len(seen) == len(set(seen)) == 32


def test_room_joined_since_the_token_comes_with_full_state(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat", name="Joined later")
    for i in range(12):
        say(server, alice, room_id, f"x{i}")
    token = sync(server, bob)["next_batch"]
    act(server, bob, room_id, "/join")
    room = joined_room(sync(server, bob, since=token), room_id)
    state_types = {e["type"] for e in room["state"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.power_levels"} <= state_types
    assert room["timeline"]["events"][-1]["type"] == "m.room.member"
    assert room["summary"]["m.joined_member_count"] == 2
    # spec: a named room has no heroes
    assert "m.heroes" not in room["summary"]


def test_full_state_resends_the_state(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice, name="Full")
    token = sync(server, alice)["next_batch"]
    body = sync(server, alice, since=token, full_state="true")
    room = joined_room(body, room_id)
    assert any(
        e["type"] == "m.room.name" for e in room["state"]["events"] + room["timeline"]["events"]
    )


# --- long-polling -------------------------------------------------------------------------------


def test_long_poll_is_woken_by_another_users_message(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    token = sync(server, bob)["next_batch"]
    sent_at: list[float] = []

    def send_later() -> None:
        time.sleep(0.5)
        sent_at.append(time.monotonic())
        say(server, alice, room_id, "wake up")

    sender = threading.Thread(target=send_later)
    started = time.monotonic()
    sender.start()
    reply = sync_reply(server, bob, since=token, timeout=10_000)
    returned = time.monotonic()
    sender.join()
    assert reply.status == 200, reply.body
    assert texts(joined_room(reply.json(), room_id)["timeline"]["events"]) == ["wake up"]
    assert returned - started < 5
    assert returned - sent_at[0] < 1.0


def test_long_poll_returns_empty_at_timeout(server: RunningServer) -> None:
    alice = user(server, "alice")
    create_room(server, alice)
    token = sync(server, alice)["next_batch"]
    started = time.monotonic()
    body = sync(server, alice, since=token, timeout=1000)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5
    assert "rooms" not in body and isinstance(body["next_batch"], str)


# --- filters -------------------------------------------------------------------------------------


def test_timeline_filter_types_senders_and_limit(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    token = sync(server, bob)["next_batch"]
    say(server, alice, room_id, "a1")
    say(server, bob, room_id, "b1")
    authed(alice, "PUT", room_url(server, room_id, "/state/m.room.topic"), {"topic": "T"})
    say(server, alice, room_id, "a2")
    only_alice = {"room": {"timeline": {"senders": [alice.user_id], "types": ["m.room.message"]}}}
    timeline = joined_room(sync(server, bob, since=token, filter=only_alice), room_id)["timeline"]
    assert texts(timeline["events"]) == ["a1", "a2"]
    assert {e["type"] for e in timeline["events"]} == {"m.room.message"}
    not_alice = {"room": {"timeline": {"not_senders": [alice.user_id]}}}
    timeline = joined_room(sync(server, bob, since=token, filter=not_alice), room_id)["timeline"]
    assert texts(timeline["events"]) == ["b1"]
    # the topic change the filter hid still reaches the client, as state
    room = joined_room(sync(server, bob, since=token, filter=not_alice), room_id)
    assert [e["content"] for e in room["state"]["events"] if e["type"] == "m.room.topic"] == [
        {"topic": "T"}
    ]
    no_topic = {"room": {"timeline": {"not_types": ["m.room.topic"], "limit": 2}}}
    timeline = joined_room(sync(server, bob, since=token, filter=no_topic), room_id)["timeline"]
    assert texts(timeline["events"]) == ["b1", "a2"]
    assert timeline["limited"] is True
    # rooms/not_rooms on the room filter
    other = create_room(server, bob)
    body = sync(server, bob, filter={"room": {"not_rooms": [room_id]}})
    assert other in body["rooms"]["join"] and room_id not in body["rooms"]["join"]
    body = sync(server, bob, filter={"room": {"rooms": [room_id]}})
    assert list(body["rooms"]["join"]) == [room_id]


def test_lazy_loading_sends_only_the_timeline_senders_members(server: RunningServer) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    # named, so no heroes' members are added
    room_id = create_room(server, alice, preset="public_chat", name="Lazy")
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    for i in range(4):
        say(server, bob, room_id, f"b{i}")
    lazy = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 3}}}
    room = joined_room(sync(server, alice, filter=lazy), room_id)
    members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
    # the senders', and (spec) the syncing user's own
    assert members == {alice.user_id, bob.user_id}
    assert {e["sender"] for e in room["timeline"]["events"]} == {bob.user_id}
    assert any(e["type"] == "m.room.create" for e in room["state"]["events"])
    # the summary still counts everyone
    assert room["summary"]["m.joined_member_count"] == 3
    # without lazy loading every member is there
    room = joined_room(sync(server, alice, filter={"room": {"timeline": {"limit": 3}}}), room_id)
    members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {alice.user_id, bob.user_id, carol.user_id}


def test_event_fields(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice)
    say(server, alice, room_id, "only the body")
    body = sync(server, alice, filter={"event_fields": ["type", "content.body"]})
    events = joined_room(body, room_id)["timeline"]["events"]
    assert events[-1] == {"type": "m.room.message", "content": {"body": "only the body"}}


def test_stored_filter_by_id(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice)
    say(server, alice, room_id, "one")
    say(server, alice, room_id, "two")
    reply = authed(
        alice,
        "POST",
        f"{server.url}{CLIENT}/user/{urllib.parse.quote(alice.user_id)}/filter",
        {"room": {"timeline": {"limit": 1}}},
    )
    assert reply.status == 200, reply.body
    filter_id = reply.json()["filter_id"]
    timeline = joined_room(sync(server, alice, filter=filter_id), room_id)["timeline"]
    assert texts(timeline["events"]) == ["two"] and len(timeline["events"]) == 1


# --- invites, leaving ------------------------------------------------------------------------


def test_invite_and_leave_sections(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, name="Invited", preset="private_chat")
    token = sync(server, bob)["next_batch"]
    act(server, alice, room_id, "/invite", {"user_id": bob.user_id})
    body = sync(server, bob, since=token)
    invite = body["rooms"]["invite"][room_id]["invite_state"]["events"]
    kinds = {(e["type"], e["state_key"]) for e in invite}
    assert ("m.room.name", "") in kinds and ("m.room.create", "") in kinds
    own = [e for e in invite if e["type"] == "m.room.member"]
    assert own[-1]["state_key"] == bob.user_id and own[-1]["content"]["membership"] == "invite"
    assert own[-1]["sender"] == alice.user_id
    assert room_id in sync(server, bob)["rooms"]["invite"]

    act(server, bob, room_id, "/join")
    say(server, alice, room_id, "while you were here")
    token = sync(server, bob)["next_batch"]
    say(server, alice, room_id, "just before you left")
    act(server, bob, room_id, "/leave")
    say(server, alice, room_id, "after you left")
    body = sync(server, bob, since=token)
    left = body["rooms"]["leave"][room_id]
    events = left["timeline"]["events"]
    assert texts(events) == ["just before you left"]
    assert events[-1]["type"] == "m.room.member"
    assert events[-1]["content"]["membership"] == "leave"
    assert room_id not in body["rooms"].get("join", {})
    # initial syncs leave out rooms left, unless asked
    assert room_id not in sync(server, bob).get("rooms", {}).get("leave", {})
    include = sync(server, bob, filter={"room": {"include_leave": True}})
    assert texts(include["rooms"]["leave"][room_id]["timeline"]["events"])[-1] == (
        "just before you left"
    )
    # a forgotten room is gone from sync
    act(server, bob, room_id, "/forget")
    include = sync(server, bob, filter={"room": {"include_leave": True}})
    assert room_id not in include.get("rooms", {}).get("leave", {})


def test_knock_section(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(
        server,
        alice,
        name="Knock here",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    token = sync(server, bob)["next_batch"]
    reply = authed(bob, "POST", f"{server.url}{CLIENT}/knock/{urllib.parse.quote(room_id)}", {})
    assert reply.status == 200, reply.body
    body = sync(server, bob, since=token)
    knock = body["rooms"]["knock"][room_id]["knock_state"]["events"]
    kinds = {(e["type"], e["state_key"]) for e in knock}
    assert ("m.room.name", "") in kinds and ("m.room.join_rules", "") in kinds
    assert knock[-1]["state_key"] == bob.user_id
    assert knock[-1]["content"]["membership"] == "knock"
    # the room's members see the knock in their timeline
    timeline = joined_room(sync(server, alice), room_id)["timeline"]["events"]
    assert timeline[-1]["content"]["membership"] == "knock"


def test_room_joined_and_left_since_the_token(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat", name="Brief visit")
    token = sync(server, bob)["next_batch"]
    act(server, bob, room_id, "/join")
    say(server, alice, room_id, "hello and goodbye")
    act(server, bob, room_id, "/leave")
    left = sync(server, bob, since=token)["rooms"]["leave"][room_id]
    events = left["timeline"]["events"]
    assert texts(events) == ["hello and goodbye"]
    assert [e["content"].get("membership") for e in events if e["type"] == "m.room.member"] == [
        "join",
        "leave",
    ]
    # bob never had this room's state: it comes with it
    assert any(e["type"] == "m.room.name" for e in left["state"]["events"])


def test_rejected_invite_is_in_leave(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="private_chat")
    act(server, alice, room_id, "/invite", {"user_id": bob.user_id})
    token = sync(server, bob)["next_batch"]
    act(server, bob, room_id, "/leave")
    body = sync(server, bob, since=token)
    events = body["rooms"]["leave"][room_id]["timeline"]["events"]
    assert [e["content"]["membership"] for e in events] == ["leave"]
    assert room_id not in body["rooms"].get("invite", {})


# --- account data and ephemeral -------------------------------------------------------------


def test_account_data_global_and_per_room(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice)
    token = sync(server, alice)["next_batch"]
    base = f"{server.url}{CLIENT}/user/{urllib.parse.quote(alice.user_id)}"
    assert authed(alice, "PUT", base + "/account_data/org.example.a", {"a": 1}).status == 200
    room_data = f"/rooms/{urllib.parse.quote(room_id)}/account_data/org.example.r"
    assert authed(alice, "PUT", base + room_data, {"r": 2}).status == 200
    body = sync(server, alice, since=token)
    assert {"type": "org.example.a", "content": {"a": 1}} in body["account_data"]["events"]
    assert joined_room(body, room_id)["account_data"]["events"] == [
        {"type": "org.example.r", "content": {"r": 2}}
    ]
    # nothing new after that
    again = sync(server, alice, since=body["next_batch"])
    assert "account_data" not in again and "rooms" not in again
    # an initial sync has everything, push rules included
    initial = sync(server, alice)
    types = {e["type"] for e in initial["account_data"]["events"]}
    assert {"org.example.a", "m.push_rules"} <= types
    filtered = sync(server, alice, filter={"account_data": {"not_types": ["org.example.a"]}})
    assert "org.example.a" not in {e["type"] for e in filtered["account_data"]["events"]}


def test_account_data_wakes_a_long_poll(server: RunningServer) -> None:
    alice = user(server, "alice")
    token = sync(server, alice)["next_batch"]
    base = f"{server.url}{CLIENT}/user/{urllib.parse.quote(alice.user_id)}"

    def put_later() -> None:
        time.sleep(0.3)
        authed(alice, "PUT", base + "/account_data/org.example.wake", {"w": True})

    thread = threading.Thread(target=put_later)
    started = time.monotonic()
    thread.start()
    body = sync(server, alice, since=token, timeout=10_000)
    thread.join()
    assert time.monotonic() - started < 3
    assert body["account_data"]["events"] == [{"type": "org.example.wake", "content": {"w": True}}]


def test_typing_and_receipts_arrive_as_ephemeral_events(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    event_id = say(server, alice, room_id, "read me")
    token = sync(server, bob)["next_batch"]
    typing = room_url(server, room_id, f"/typing/{urllib.parse.quote(alice.user_id)}")
    assert authed(alice, "PUT", typing, {"typing": True, "timeout": 30000}).status == 200
    body = sync(server, bob, since=token, timeout=5000)
    events = joined_room(body, room_id)["ephemeral"]["events"]
    assert {"type": "m.typing", "content": {"user_ids": [alice.user_id]}} in events
    # no new events, yet a timeline a client can page back from
    timeline = joined_room(body, room_id)["timeline"]
    assert timeline["events"] == [] and timeline["limited"] is False
    query = urllib.parse.urlencode({"from": timeline["prev_batch"], "dir": "b", "limit": 1})
    older = authed(bob, "GET", room_url(server, room_id, "/messages?" + query)).json()
    assert texts(older["chunk"]) == ["read me"]
    receipt = room_url(server, room_id, f"/receipt/m.read/{urllib.parse.quote(event_id)}")
    assert authed(bob, "POST", receipt, {}).status == 200
    body = sync(server, alice, since=token)
    receipts = [
        e for e in joined_room(body, room_id)["ephemeral"]["events"] if e["type"] == "m.receipt"
    ]
    assert bob.user_id in receipts[0]["content"][event_id]["m.read"]
    # the ephemeral filter can hide them
    hidden = sync(server, alice, since=token, filter={"room": {"ephemeral": {"types": []}}})
    assert (
        room_id not in hidden.get("rooms", {}).get("join", {})
        or not joined_room(hidden, room_id)["ephemeral"]["events"]
    )


def test_unread_counts_per_room_and_per_thread(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    root = say(server, alice, room_id, "root")
    reply = authed(
        alice,
        "PUT",
        room_url(server, room_id, f"/send/m.room.message/th{next(_counter)}"),
        {
            "msgtype": "m.text",
            "body": "in the thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    assert reply.status == 200, reply.body
    room = joined_room(sync(server, bob), room_id)
    assert room["unread_notifications"]["notification_count"] == 2
    assert "unread_thread_notifications" not in room
    threads = {"room": {"timeline": {"unread_thread_notifications": True}}}
    room = joined_room(sync(server, bob, filter=threads), room_id)
    assert room["unread_notifications"]["notification_count"] == 1
    assert room["unread_thread_notifications"][root]["notification_count"] == 1


def test_presence_of_room_mates_and_the_presence_filter(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    status = f"{server.url}{CLIENT}/presence/{urllib.parse.quote(alice.user_id)}/status"
    reply = authed(alice, "PUT", status, {"presence": "online", "status_msg": "here"})
    assert reply.status == 200, reply.body
    body = sync(server, bob)
    mine = [e for e in body["presence"]["events"] if e["sender"] == alice.user_id]
    assert mine and mine[-1]["content"]["status_msg"] == "here"
    hidden = sync(server, bob, filter={"presence": {"not_types": ["m.presence"]}})
    assert "presence" not in hidden
    only_bob = sync(server, bob, filter={"presence": {"senders": [bob.user_id]}})
    senders = {e["sender"] for e in only_bob.get("presence", {}).get("events", [])}
    assert alice.user_id not in senders


def test_to_device_messages_are_delivered_once(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    token = sync(server, bob)["next_batch"]
    reply = authed(
        alice,
        "PUT",
        f"{server.url}{CLIENT}/sendToDevice/org.example.ping/t{next(_counter)}",
        {"messages": {bob.user_id: {bob.device_id: {"n": 1}}}},
    )
    assert reply.status == 200, reply.body
    body = sync(server, bob, since=token, timeout=5000)
    assert [e["content"] for e in body["to_device"]["events"]] == [{"n": 1}]
    assert body["to_device"]["events"][0]["sender"] == alice.user_id
    assert "to_device" not in sync(server, bob, since=body["next_batch"])


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ({"since": "nonsense"}, "M_INVALID_PARAM"),
        ({"since": "s1_x"}, "M_INVALID_PARAM"),
        ({"timeout": "soon"}, "M_INVALID_PARAM"),
        ({"full_state": "yes"}, "M_INVALID_PARAM"),
        ({"set_presence": "busy"}, "M_INVALID_PARAM"),
        ({"filter": "{not json"}, "M_NOT_JSON"),
        ({"filter": "424242"}, "M_INVALID_PARAM"),
        ({"filter": '{"room": {"timeline": {"limit": "ten"}}}'}, "M_BAD_JSON"),
    ],
)
def test_bad_parameters_are_400(server: RunningServer, query: dict[str, str], errcode: str) -> None:
    alice = user(server, "alice")
    reply = sync_reply(server, alice, **query)
    assert (reply.status, reply.errcode) == (400, errcode), reply.body


def test_sync_needs_an_access_token(server: RunningServer) -> None:
    reply = request("GET", server.url + CLIENT + "/sync")
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")
    reply = request("GET", server.url + CLIENT + "/sync", headers={"Authorization": "Bearer x"})
    assert (reply.status, reply.errcode) == (401, "M_UNKNOWN_TOKEN")
