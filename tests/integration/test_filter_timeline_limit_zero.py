"""A filter whose timeline limit is 0 (Synapse accepts it, and clients that want only a
room's state send it) over real HTTP on both engines: the sync has the state and no
timeline events."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, Session, authed, register

server = module_server(**REGISTRATION_CONFIG)

ZERO = {"room": {"state": {"types": ["m.room.member"]}, "timeline": {"limit": 0}}}


def room_with_a_message(server: RunningServer, name: str) -> tuple[Session, str]:
    user = register(server.url, name)
    created = authed(user, "POST", server.url + CLIENT + "/createRoom", {})
    assert created.status == 200, created.body
    room_id: str = created.json()["room_id"]
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t1"
    assert authed(user, "PUT", url, {"msgtype": "m.text", "body": "hi"}).status == 200
    return user, room_id


def sync_room(server: RunningServer, user: Session, filter_param: str, room_id: str) -> Any:
    reply = authed(user, "GET", f"{server.url}{CLIENT}/sync?filter={quote(filter_param)}")
    assert reply.status == 200, reply.body
    return reply.json()["rooms"]["join"][room_id]


def check_state_only(room: Any, user: Session) -> None:
    assert room.get("timeline", {}).get("events", []) == []
    state = room["state"]["events"]
    assert [(e["type"], e["state_key"]) for e in state] == [("m.room.member", user.user_id)]


def test_inline_filter_with_timeline_limit_zero(server: RunningServer) -> None:
    user, room_id = room_with_a_message(server, "zeroinline")
    check_state_only(sync_room(server, user, json.dumps(ZERO), room_id), user)


def test_stored_filter_with_timeline_limit_zero(server: RunningServer) -> None:
    user, room_id = room_with_a_message(server, "zerostored")
    url = f"{server.url}{CLIENT}/user/{quote(user.user_id)}/filter"
    created = authed(user, "POST", url, ZERO)
    assert created.status == 200, created.body
    filter_id = created.json()["filter_id"]
    stored = authed(user, "GET", f"{url}/{filter_id}")
    assert stored.json()["room"]["timeline"] == {"limit": 0}
    check_state_only(sync_room(server, user, filter_id, room_id), user)
