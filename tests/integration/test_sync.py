"""GET /sync over real HTTP on both engines: initial and incremental syncs, limited
timelines paging back through /messages, long-polls woken by the notifier, filters and
lazy loading, invite and leave sections, account data, ephemeral events and errors."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, register

CLIENT = "/_matrix/client/v3"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    port = free_port()
    config = write_test_config(
        tmp_path_factory.mktemp("hs"), module_database, port, **REGISTRATION_CONFIG
    )
    running = start_server(config, port)
    yield running
    assert running.stop() == 0, running.log()


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
    assert room["summary"]["m.heroes"] == [alice.user_id]


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
