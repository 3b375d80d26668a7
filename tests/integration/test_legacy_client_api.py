"""Legacy forms clients still send, over real HTTP on both engines: the r0 and unstable
prefixes, and the deprecated endpoints Synapse still serves (the event stream, the
initial syncs, an event by ID alone, sending without a transaction ID)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply
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

server = module_server(**REGISTRATION_CONFIG)

R0 = "/_matrix/client/r0"
UNSTABLE = "/_matrix/client/unstable"


@pytest.fixture(scope="module")
def fay(server: RunningServer) -> Session:
    return register(server.url, "fay")


@pytest.fixture(scope="module")
def gus(server: RunningServer) -> Session:
    return register(server.url, "gus")


def events(server: RunningServer, session: Session, query: str = "") -> Reply:
    return authed(session, "GET", server.url + R0 + "/events" + query)


def stream_end(server: RunningServer, session: Session) -> str:
    reply = events(server, session, "?timeout=0")
    assert reply.status == 200, reply.body
    end: str = reply.json()["end"]
    return end


# -- prefixes ----------------------------------------------------------------------------------


def test_r0_prefix_serves_r0_endpoints(server: RunningServer, fay: Session) -> None:
    reply = authed(fay, "GET", server.url + R0 + "/account/whoami")
    assert reply.status == 200
    assert reply.json()["user_id"] == fay.user_id
    room_id = create_room(server.url, fay)
    url = server.url + R0 + f"/rooms/{quote(room_id)}/send/m.room.message/r0txn"
    sent = authed(fay, "PUT", url, {"msgtype": "m.text", "body": "over r0"})
    assert sent.status == 200, sent.body
    url = server.url + R0 + f"/rooms/{quote(room_id)}/event/{quote(sent.json()['event_id'])}"
    assert authed(fay, "GET", url).json()["content"]["body"] == "over r0"


def test_r0_prefix_leaves_out_later_endpoints(server: RunningServer, fay: Session) -> None:
    # refresh tokens and knocking arrived after r0: Ranvier serves them under v3 only
    reply = authed(fay, "POST", server.url + R0 + "/refresh", {"refresh_token": "x"})
    assert reply.status == 404
    assert reply.errcode == "M_UNRECOGNIZED"
    reply = authed(fay, "POST", server.url + R0 + "/knock/!nowhere:test.localhost", {})
    assert reply.status == 404
    assert reply.errcode == "M_UNRECOGNIZED"


def test_unstable_prefix_serves_cross_signing_and_backup(
    server: RunningServer, fay: Session
) -> None:
    # no backup yet: the same answer as under v3
    v3 = authed(fay, "GET", server.url + CLIENT + "/room_keys/version")
    unstable = authed(fay, "GET", server.url + UNSTABLE + "/room_keys/version")
    assert (unstable.status, unstable.errcode) == (v3.status, v3.errcode) == (404, "M_NOT_FOUND")
    reply = authed(fay, "POST", server.url + UNSTABLE + "/keys/signatures/upload", {})
    assert reply.status == 200, reply.body
    assert reply.json()["failures"] == {}


def test_unstable_room_aliases(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay, room_alias_name="legacy-aliases")
    url = server.url + UNSTABLE + f"/org.matrix.msc2432/rooms/{quote(room_id)}/aliases"
    reply = authed(fay, "GET", url)
    assert reply.status == 200, reply.body
    assert reply.json()["aliases"] == ["#legacy-aliases:test.localhost"]


# -- the event stream ------------------------------------------------------------------------


def test_event_stream_initially(server: RunningServer, fay: Session) -> None:
    reply = events(server, fay, "?timeout=0")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert isinstance(body["chunk"], list)
    assert isinstance(body["start"], str) and isinstance(body["end"], str)


def test_event_stream_carries_new_events_once(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    start = stream_end(server, fay)
    event_id = send_text(server.url, fay, room_id, "to the stream")
    body = events(server, fay, f"?from={start}&timeout=5000").json()
    found = [e for e in body["chunk"] if e.get("event_id") == event_id]
    assert len(found) == 1
    assert found[0]["room_id"] == room_id
    assert found[0]["content"]["body"] == "to the stream"
    again = events(server, fay, f"?from={body['end']}&timeout=0").json()
    assert event_id not in [e.get("event_id") for e in again["chunk"]]


def test_event_stream_catches_up_in_order(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    token = stream_end(server, fay)
    sent = [send_text(server.url, fay, room_id, f"message {n}") for n in range(12)]
    seen: list[str] = []
    for _ in range(10):
        body = events(server, fay, f"?from={token}&timeout=0&limit=5").json()
        token = body["end"]
        messages = [e for e in body["chunk"] if e.get("type") == "m.room.message"]
        assert len(messages) <= 5
        seen += [e["event_id"] for e in messages]
        if len(seen) >= len(sent):
            break
    assert seen == sent


def test_event_stream_carries_room_tags(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    token = stream_end(server, fay)
    url = server.url + CLIENT + f"/user/{quote(fay.user_id)}/rooms/{quote(room_id)}/tags/work"
    assert authed(fay, "PUT", url, {"order": 0.5}).status == 200
    body = events(server, fay, f"?from={token}&timeout=5000").json()
    tags = [e for e in body["chunk"] if e.get("type") == "m.tag"]
    assert tags and tags[-1]["room_id"] == room_id
    assert "work" in tags[-1]["content"]["tags"]


@pytest.mark.parametrize(
    "query", ["?limit=hello", "?limit=-1", "?timeout=soon", "?from=not-a-token"]
)
def test_event_stream_refuses_bad_parameters(
    server: RunningServer, fay: Session, query: str
) -> None:
    reply = events(server, fay, query)
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


def test_event_stream_needs_a_token(server: RunningServer) -> None:
    from tests.integration.client import request

    reply = request("GET", server.url + R0 + "/events?timeout=0")
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


# -- an event by ID alone -----------------------------------------------------------------------


def test_event_by_id(server: RunningServer, fay: Session, gus: Session) -> None:
    room_id = create_room(server.url, fay)
    event_id = send_text(server.url, fay, room_id, "find me")
    reply = authed(fay, "GET", server.url + CLIENT + f"/events/{quote(event_id)}")
    assert reply.status == 200, reply.body
    assert reply.json()["content"]["body"] == "find me"
    assert reply.json()["room_id"] == room_id
    # someone not in the room learns nothing, not even that the event exists
    reply = authed(gus, "GET", server.url + CLIENT + f"/events/{quote(event_id)}")
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"
    reply = authed(fay, "GET", server.url + CLIENT + "/events/$nosuchevent")
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


# -- sending without a transaction ID -----------------------------------------------------------


def test_post_send_makes_a_new_event_each_time(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    first = send_text(server.url, fay, room_id, "same")
    second = send_text(server.url, fay, room_id, "same")
    assert first != second
    url = server.url + R0 + f"/rooms/{quote(room_id)}/send/m.room.message"
    reply = authed(fay, "POST", url, b"not json")
    assert reply.status == 400
    assert reply.errcode == "M_NOT_JSON"


def test_post_send_refused_to_non_members(
    server: RunningServer, fay: Session, gus: Session
) -> None:
    room_id = create_room(server.url, fay)
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/send/m.room.message"
    reply = authed(gus, "POST", url, {"msgtype": "m.text", "body": "let me in"})
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


# -- the initial syncs -------------------------------------------------------------------------


def initial_sync(server: RunningServer, session: Session, query: str = "") -> Reply:
    return authed(session, "GET", server.url + CLIENT + "/initialSync" + query)


def room_of(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    (room,) = [room for room in body["rooms"] if room["room_id"] == room_id]
    return room


def test_global_initial_sync(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay, preset="public_chat", visibility="public")
    event_id = send_text(server.url, fay, room_id, "in the snapshot")
    reply = initial_sync(server, fay)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert isinstance(body["end"], str)
    assert isinstance(body["presence"], list)
    room = room_of(body, room_id)
    assert room["membership"] == "join"
    assert room["visibility"] == "public"
    chunk = room["messages"]["chunk"]
    assert chunk[-1]["event_id"] == event_id
    assert all(event["room_id"] == room_id for event in chunk)
    assert {"start", "end"} <= room["messages"].keys()
    state_types = {event["type"] for event in room["state"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= state_types


def test_global_initial_sync_limit_zero(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    send_text(server.url, fay, room_id, "not shown")
    room = room_of(initial_sync(server, fay, "?limit=0").json(), room_id)
    assert room["messages"]["chunk"] == []
    assert any(event["type"] == "m.room.create" for event in room["state"])


def test_global_initial_sync_archived(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/leave"
    assert authed(fay, "POST", url, {}).status == 200
    assert room_id not in [r["room_id"] for r in initial_sync(server, fay).json()["rooms"]]
    room = room_of(initial_sync(server, fay, "?archived=true").json(), room_id)
    assert room["membership"] == "leave"


def test_global_initial_sync_shows_invites(
    server: RunningServer, fay: Session, gus: Session
) -> None:
    room_id = create_room(server.url, fay, invite=[gus.user_id])
    room = room_of(initial_sync(server, gus).json(), room_id)
    assert room["membership"] == "invite"
    assert room["inviter"] == fay.user_id


@pytest.mark.parametrize("query", ["?limit=hello", "?archived=maybe"])
def test_global_initial_sync_refuses_bad_parameters(
    server: RunningServer, fay: Session, query: str
) -> None:
    reply = initial_sync(server, fay, query)
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


def test_room_initial_sync(server: RunningServer, fay: Session, gus: Session) -> None:
    room_id = create_room(server.url, fay)
    event_id = send_text(server.url, fay, room_id, "room snapshot")
    url = server.url + R0 + f"/rooms/{quote(room_id)}/initialSync"
    reply = authed(fay, "GET", url)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["room_id"] == room_id
    assert body["membership"] == "join"
    assert body["messages"]["chunk"][-1]["event_id"] == event_id
    assert any(event["type"] == "m.room.create" for event in body["state"])
    assert isinstance(body["presence"], list)
    # not a member: refused as /state refuses
    reply = authed(gus, "GET", url)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


def test_room_initial_sync_of_a_departed_room(server: RunningServer, fay: Session) -> None:
    room_id = create_room(server.url, fay)
    send_text(server.url, fay, room_id, "before leaving")
    assert authed(fay, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/leave", {})
    reply = authed(fay, "GET", server.url + CLIENT + f"/rooms/{quote(room_id)}/initialSync")
    assert reply.status == 200, reply.body
    assert reply.json()["membership"] == "leave"
    bodies = [e["content"].get("body") for e in reply.json()["messages"]["chunk"]]
    assert "before leaving" in bodies
