"""The legacy event stream and initial syncs as Synapse answers them, over real HTTP on both
engines: refusing at once who may not stream a room, peeking into world_readable rooms, the
v1 event format (`user_id`), presence and account data of the initial syncs, and to-device
messages left for /sync."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    register,
    send_text,
)

server = module_server(allow_guest_access=True, **REGISTRATION_CONFIG)


@pytest.fixture(scope="module")
def hal(server: RunningServer) -> Session:
    return register(server.url, "hal")


@pytest.fixture(scope="module")
def ida(server: RunningServer) -> Session:
    return register(server.url, "ida")


@pytest.fixture(scope="module")
def guest(server: RunningServer) -> Session:
    reply = request("POST", server.url + CLIENT + "/register?kind=guest", {})
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def get(server: RunningServer, session: Session, path: str) -> Reply:
    return authed(session, "GET", server.url + CLIENT + path)


def world_readable_room(server: RunningServer, session: Session) -> str:
    return create_room(
        server.url,
        session,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )


def test_a_guest_must_name_a_room(server: RunningServer, guest: Session) -> None:
    started = time.monotonic()
    reply = get(server, guest, "/events")
    assert (reply.status, reply.errcode) == (400, "M_UNKNOWN")
    # refused at once, not after the default 30 s wait
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
def test_a_non_member_cannot_stream_a_room_that_is_not_world_readable(
    server: RunningServer, hal: Session, ida: Session, guest: Session, visibility: str
) -> None:
    room_id = create_room(
        server.url,
        hal,
        preset="public_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": visibility},
            }
        ],
    )
    send_text(server.url, hal, room_id, "mice")
    for who in (ida, guest):
        started = time.monotonic()
        reply = get(server, who, f"/events?room_id={quote(room_id)}")
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        assert time.monotonic() - started < 5


def test_peeking_into_a_world_readable_room(
    server: RunningServer, hal: Session, guest: Session
) -> None:
    room_id = world_readable_room(server, hal)
    send_text(server.url, hal, room_id, "before the peek")

    reply = get(server, guest, f"/rooms/{quote(room_id)}/initialSync")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["room_id"] == room_id
    assert "membership" not in body
    chunk = body["messages"]["chunk"]
    assert chunk[-1]["content"]["body"] == "before the peek"
    assert chunk[-1]["user_id"] == hal.user_id
    members = {e["state_key"] for e in body["state"] if e["type"] == "m.room.member"}
    assert members == {hal.user_id}

    start = get(server, guest, f"/events?room_id={quote(room_id)}&timeout=0")
    assert start.status == 200, start.body
    event_id = send_text(server.url, hal, room_id, "during the peek")
    reply = get(
        server,
        guest,
        f"/events?room_id={quote(room_id)}&timeout=5000&from={start.json()['end']}",
    )
    assert reply.status == 200, reply.body
    found = [e for e in reply.json()["chunk"] if e.get("event_id") == event_id]
    assert found and found[0]["user_id"] == hal.user_id
    assert found[0]["room_id"] == room_id


def test_initial_syncs_in_the_v1_format(server: RunningServer, hal: Session, ida: Session) -> None:
    room_id = create_room(server.url, hal, preset="public_chat")
    assert authed(ida, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/join", {})
    send_text(server.url, hal, room_id, "hello")
    put = authed(
        hal,
        "PUT",
        server.url + CLIENT + f"/user/{quote(hal.user_id)}/account_data/org.example.only",
        {"cats_or_rats": "cats"},
    )
    assert put.status == 200

    body = get(server, hal, "/initialSync").json()
    presence_of = {e["content"]["user_id"] for e in body["presence"]}
    # the user's own presence, and the room-mate's
    assert {hal.user_id, ida.user_id} <= presence_of
    # only what the user stored: push rules are not account data here
    assert [e["type"] for e in body["account_data"]] == ["org.example.only"]
    (room,) = [r for r in body["rooms"] if r["room_id"] == room_id]
    for event in [*room["state"], *room["messages"]["chunk"]]:
        assert event["user_id"] == event["sender"]

    room_body = get(server, ida, f"/rooms/{quote(room_id)}/initialSync").json()
    assert hal.user_id in {e["content"]["user_id"] for e in room_body["presence"]}
    members = {e["user_id"] for e in room_body["state"] if e["type"] == "m.room.member"}
    assert {hal.user_id, ida.user_id} <= members


def test_no_presence_in_a_departed_room(server: RunningServer, hal: Session, ida: Session) -> None:
    room_id = create_room(server.url, hal, preset="public_chat")
    assert authed(ida, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/join", {})
    assert authed(ida, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/leave", {})
    body = get(server, ida, f"/rooms/{quote(room_id)}/initialSync").json()
    assert body["membership"] == "leave"
    assert body["presence"] == []
    assert body["receipts"] == []


def test_the_event_stream_leaves_to_device_messages_for_sync(
    server: RunningServer, hal: Session, ida: Session
) -> None:
    first = get(server, ida, "/sync?timeout=0").json()["next_batch"]
    url = server.url + CLIENT + "/sendToDevice/org.example.ping/txn-legacy-1"
    body = {"messages": {ida.user_id: {ida.device_id: {"n": 1}}}}
    assert authed(hal, "PUT", url, body).status == 200
    # two rounds of the event stream, the second from the first's token
    end = get(server, ida, "/events?timeout=0").json()["end"]
    assert get(server, ida, f"/events?timeout=0&from={end}").status == 200
    events = get(server, ida, f"/sync?timeout=0&since={first}").json()
    messages = events.get("to_device", {}).get("events", [])
    assert [m["content"] for m in messages] == [{"n": 1}]


def test_a_peek_sees_the_rooms_receipts_and_typing(
    server: RunningServer, hal: Session, guest: Session
) -> None:
    room_id = world_readable_room(server, hal)
    event_id = send_text(server.url, hal, room_id, "read me")
    stream = f"/events?room_id={quote(room_id)}"
    token = get(server, guest, stream + "&timeout=0").json()["end"]

    room = server.url + CLIENT + f"/rooms/{quote(room_id)}"
    assert authed(hal, "POST", room + f"/receipt/m.read/{quote(event_id)}", {}).status == 200
    reply = get(server, guest, stream + f"&timeout=5000&from={token}")
    receipts = [e for e in reply.json()["chunk"] if e["type"] == "m.receipt"]
    assert receipts and receipts[0]["room_id"] == room_id
    assert hal.user_id in receipts[0]["content"][event_id]["m.read"]

    token = reply.json()["end"]
    typing = {"typing": True, "timeout": 10000}
    assert authed(hal, "PUT", room + f"/typing/{quote(hal.user_id)}", typing).status == 200
    reply = get(server, guest, stream + f"&timeout=5000&from={token}")
    typed = [e for e in reply.json()["chunk"] if e["type"] == "m.typing"]
    assert typed and typed[0]["content"]["user_ids"] == [hal.user_id]
    assert typed[0]["room_id"] == room_id
