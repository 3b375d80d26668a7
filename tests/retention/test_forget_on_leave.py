"""forget_rooms_on_leave over real HTTP on both engines: leaving, being kicked and being
banned each forget the room at once (it leaves /sync with include_leave and its history is
closed), the members who stay are untouched, and joining again brings the room back."""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import quote

import pytest

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

server = module_server(**REGISTRATION_CONFIG, forget_rooms_on_leave=True)
_calls = itertools.count()


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


def sync_rooms(server: RunningServer, who: Session) -> dict[str, Any]:
    """An initial /sync that also lists the rooms left (each time a filter of its own, as
    the server answers a repeated request from its cache)."""
    body = json.dumps({"room": {"include_leave": True, "timeline": {"limit": 5 + next(_calls)}}})
    reply = authed(who, "GET", f"{server.url}{CLIENT}/sync?filter={quote(body)}")
    assert reply.status == 200, reply.body
    rooms: dict[str, Any] = reply.json().get("rooms", {})
    return rooms


def messages_status(server: RunningServer, who: Session, room_id: str) -> int:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=10"
    return authed(who, "GET", url).status


def join(server: RunningServer, who: Session, room_id: str) -> None:
    reply = authed(who, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})
    assert reply.status == 200, reply.body


def room_post(server: RunningServer, who: Session, room_id: str, action: str, body: Any) -> None:
    reply = authed(who, "POST", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/{action}", body)
    assert reply.status == 200, reply.body


def assert_forgotten(server: RunningServer, who: Session, room_id: str) -> None:
    rooms = sync_rooms(server, who)
    assert room_id not in rooms.get("leave", {})
    assert room_id not in rooms.get("join", {})
    assert messages_status(server, who, room_id) == 403


def test_leaving_forgets_the_room_and_joining_brings_it_back(
    server: RunningServer, alice: Session
) -> None:
    bob = register(server.url, "bob")
    room_id = create_room(server.url, alice, preset="public_chat")
    join(server, bob, room_id)
    send_text(server.url, alice, room_id, "hello")
    room_post(server, bob, room_id, "leave", {})

    assert_forgotten(server, bob, room_id)
    # the member who stays keeps the room
    assert room_id in sync_rooms(server, alice).get("join", {})
    assert messages_status(server, alice, room_id) == 200

    join(server, bob, room_id)
    assert room_id in sync_rooms(server, bob).get("join", {})
    assert messages_status(server, bob, room_id) == 200


def test_a_kick_and_a_ban_forget_the_room_too(server: RunningServer, alice: Session) -> None:
    carol = register(server.url, "carol")
    dave = register(server.url, "dave")
    room_id = create_room(server.url, alice, preset="public_chat")
    join(server, carol, room_id)
    join(server, dave, room_id)
    room_post(server, alice, room_id, "kick", {"user_id": carol.user_id})
    room_post(server, alice, room_id, "ban", {"user_id": dave.user_id})

    assert_forgotten(server, carol, room_id)
    assert_forgotten(server, dave, room_id)
