"""What a client reads of a room's history over real HTTP on both engines: where /messages
carries `end`, the state a public_chat room starts with, and the messages of a user who
deactivated with `erase` as room-mates and later joiners see them."""

from __future__ import annotations

import urllib.parse
from typing import Any

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    register,
)

CLIENT = "/_matrix/client/v3"

server = module_server(**REGISTRATION_CONFIG)

_txn = iter(range(10**9))


def call(server: RunningServer, who: Session, method: str, path: str, body: Any = None) -> Any:
    reply = authed(who, method, server.url + CLIENT + path, body)
    assert reply.status == 200, reply.body
    return reply.json()


def room_path(room_id: str, tail: str) -> str:
    return f"/rooms/{urllib.parse.quote(room_id)}{tail}"


def create_room(server: RunningServer, who: Session, **body: Any) -> str:
    room_id: str = call(server, who, "POST", "/createRoom", body)["room_id"]
    return room_id


def say(server: RunningServer, who: Session, room_id: str, text: str) -> str:
    path = room_path(room_id, f"/send/m.room.message/t{next(_txn)}")
    event_id: str = call(server, who, "PUT", path, {"msgtype": "m.text", "body": text})["event_id"]
    return event_id


def messages(server: RunningServer, who: Session, room_id: str, **query: Any) -> Any:
    return call(
        server, who, "GET", room_path(room_id, "/messages?" + urllib.parse.urlencode(query))
    )


def test_messages_end_is_omitted_only_after_the_last_page(
    server: RunningServer, alice: Session
) -> None:
    room_id = create_room(server, alice, preset="private_chat")
    say(server, alice, room_id, "hello")
    # the whole room fits in one page: the page still carries `end` ...
    page = messages(server, alice, room_id, dir="b", limit=100)
    assert page["chunk"] and "end" in page
    # ... and the page after it, empty, has none
    after = messages(server, alice, room_id, dir="b", **{"from": page["end"]})
    assert after["chunk"] == [] and "end" not in after

    # forwards from a sync token to the newest event: `end` to continue from
    next_batch = call(server, alice, "GET", "/sync")["next_batch"]
    newest = say(server, alice, room_id, "newest")
    forward = messages(server, alice, room_id, dir="f", **{"from": next_batch})
    assert [e["event_id"] for e in forward["chunk"]] == [newest]
    assert "end" in forward
    nothing_more = messages(server, alice, room_id, dir="f", **{"from": forward["end"]})
    assert nothing_more["chunk"] == [] and "end" not in nothing_more


def test_public_chat_sends_no_guest_access_event(server: RunningServer, alice: Session) -> None:
    public = create_room(server, alice, preset="public_chat")
    state = call(server, alice, "GET", room_path(public, "/state"))
    assert "m.room.guest_access" not in {e["type"] for e in state}
    private = create_room(server, alice, preset="private_chat")
    guest_access = call(server, alice, "GET", room_path(private, "/state/m.room.guest_access"))
    assert guest_access == {"guest_access": "can_join"}


def _timeline_event(server: RunningServer, who: Session, room_id: str, event_id: str) -> Any:
    page = messages(server, who, room_id, dir="b", limit=50)
    (event,) = [e for e in page["chunk"] if e["event_id"] == event_id]
    return event


def test_erased_users_messages_are_hidden_from_later_joiners(
    server: RunningServer, bob: Session, carol: Session
) -> None:
    eraser = register(server.url, "eraser")
    room_id = create_room(server, eraser, preset="public_chat")
    call(server, bob, "POST", room_path(room_id, "/join"), {})
    message = say(server, eraser, room_id, "forget me")
    call(server, carol, "POST", room_path(room_id, "/join"), {})
    before = _timeline_event(server, carol, room_id, message)
    assert before["content"] == {"msgtype": "m.text", "body": "forget me"}

    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "eraser"},
        "password": DEFAULT_PASSWORD,
    }
    call(server, eraser, "POST", "/account/deactivate", {"erase": True, "auth": auth})

    # bob was in the room when it was sent: he still reads it
    seen_by_bob = _timeline_event(server, bob, room_id, message)
    assert seen_by_bob["content"] == {"msgtype": "m.text", "body": "forget me"}
    # carol joined later: she gets it pruned, as if redacted, in /messages and /sync
    seen_by_carol = _timeline_event(server, carol, room_id, message)
    assert seen_by_carol["type"] == "m.room.message"
    assert seen_by_carol["content"] == {}
    synced = call(server, carol, "GET", "/sync")["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"] for e in synced if e["event_id"] == message] in ([], [{}])
