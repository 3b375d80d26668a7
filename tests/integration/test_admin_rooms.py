"""The room admin API over real HTTP on both engines: list, details, members, state,
blocking, and the Delete Room API (v2 in the background, v1 answered when done)."""

from __future__ import annotations

import itertools
import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    Session,
    authed,
    make_admin,
    register,
)

ADMIN = "/_synapse/admin"
SERVER_NAME = "test.localhost"
_names = (f"u{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "boss")


@pytest.fixture
def alice(server: RunningServer) -> Session:
    return register(server.url, next(_names))


@pytest.fixture
def bob(server: RunningServer) -> Session:
    return register(server.url, next(_names))


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def join(server: RunningServer, session: Session, room_id: str) -> Reply:
    return authed(session, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})


def admin_get(server: RunningServer, admin: Session, path: str) -> Reply:
    return authed(admin, "GET", server.url + ADMIN + path)


def wait_for_deletion(server: RunningServer, admin: Session, delete_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = admin_get(server, admin, f"/v2/rooms/delete_status/{delete_id}")
        assert reply.status == 200, reply.body
        status: dict[str, Any] = reply.json()
        if status["status"] in ("complete", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"deletion {delete_id} did not finish")


# -- authentication -----------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/v1/rooms", None),
    ("GET", "/v1/rooms/!room:test.localhost", None),
    ("DELETE", "/v1/rooms/!room:test.localhost", {}),
    ("GET", "/v1/rooms/!room:test.localhost/members", None),
    ("GET", "/v1/rooms/!room:test.localhost/state", None),
    ("GET", "/v1/rooms/!room:test.localhost/block", None),
    ("PUT", "/v1/rooms/!room:test.localhost/block", {"block": True}),
    ("DELETE", "/v2/rooms/!room:test.localhost", {}),
    ("GET", "/v2/rooms/!room:test.localhost/delete_status", None),
    ("GET", "/v2/rooms/delete_status/abc", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_admin_room_endpoints_need_a_token(
    server: RunningServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reply = request(method, server.url + ADMIN + path, body)
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_admin_room_endpoints_refuse_non_admins(
    server: RunningServer, alice: Session, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reply = authed(alice, method, server.url + ADMIN + path, body)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/rooms/not-a-room", None),
        ("DELETE", "/v1/rooms/not-a-room", {}),
        ("GET", "/v1/rooms/not-a-room/members", None),
        ("GET", "/v1/rooms/not-a-room/state", None),
        ("GET", "/v1/rooms/not-a-room/block", None),
        ("PUT", "/v1/rooms/not-a-room/block", {"block": True}),
        ("DELETE", "/v2/rooms/not-a-room", {}),
        ("GET", "/v2/rooms/not-a-room/delete_status", None),
    ],
)
def test_malformed_room_ids_are_invalid_params(
    server: RunningServer, admin: Session, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reply = authed(admin, method, server.url + ADMIN + path, body)
    assert reply.status == 400, reply.body
    assert reply.errcode == "M_INVALID_PARAM"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/rooms/!nowhere:test.localhost"),
        ("GET", "/v1/rooms/!nowhere:test.localhost/members"),
        ("GET", "/v1/rooms/!nowhere:test.localhost/state"),
        ("DELETE", "/v2/rooms/!nowhere:test.localhost"),
        ("DELETE", "/v1/rooms/!nowhere:test.localhost"),
        ("GET", "/v2/rooms/!nowhere:test.localhost/delete_status"),
        ("GET", "/v2/rooms/delete_status/nosuchdeletion"),
    ],
)
def test_unknown_rooms_are_not_found(
    server: RunningServer, admin: Session, method: str, path: str
) -> None:
    body = {} if method == "DELETE" else None
    reply = authed(admin, method, server.url + ADMIN + path, body)
    assert reply.status == 404, reply.body
    assert reply.errcode == "M_NOT_FOUND"


# -- list ---------------------------------------------------------------------------------


def test_list_rooms_with_search_order_and_pages(
    server: RunningServer, admin: Session, alice: Session, bob: Session
) -> None:
    tag = "Zebra" + alice.user_id[1:].split(":")[0]
    small = create_room(server, alice, name=f"{tag} a-small", preset="public_chat")
    big = create_room(
        server,
        alice,
        name=f"{tag} b-big",
        preset="public_chat",
        visibility="public",
        room_alias_name=f"alias-{tag.lower()}",
    )
    assert join(server, bob, big).status == 200
    encrypted = create_room(
        server,
        alice,
        name=f"{tag} c-secret",
        initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )

    reply = admin_get(server, admin, f"/v1/rooms?search_term={tag.lower()}")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["total_rooms"] == 3
    assert body["offset"] == 0
    assert "next_batch" not in body and "prev_batch" not in body
    assert [room["room_id"] for room in body["rooms"]] == [small, big, encrypted]
    by_id = {room["room_id"]: room for room in body["rooms"]}
    assert by_id[big] == {
        "room_id": big,
        "name": f"{tag} b-big",
        "canonical_alias": f"#alias-{tag.lower()}:{SERVER_NAME}",
        "joined_members": 2,
        "joined_local_members": 2,
        "version": by_id[big]["version"],
        "creator": alice.user_id,
        "encryption": None,
        "federatable": True,
        "public": True,
        "join_rules": "public",
        # public_chat sends no m.room.guest_access (guests are forbidden by its absence)
        "guest_access": None,
        "history_visibility": "shared",
        "state_events": by_id[big]["state_events"],
        "room_type": None,
    }
    assert by_id[big]["state_events"] >= 7
    assert by_id[encrypted]["encryption"] == "m.megolm.v1.aes-sha2"
    assert by_id[encrypted]["join_rules"] == "invite"
    assert by_id[small]["public"] is False

    # the canonical alias's localpart and the exact room ID find a room too
    reply = admin_get(server, admin, f"/v1/rooms?search_term=alias-{tag.lower()}")
    assert [room["room_id"] for room in reply.json()["rooms"]] == [big]
    reply = admin_get(server, admin, f"/v1/rooms?search_term={quote(encrypted)}")
    assert [room["room_id"] for room in reply.json()["rooms"]] == [encrypted]

    search = f"search_term={tag}"
    reply = admin_get(server, admin, f"/v1/rooms?{search}&order_by=joined_members")
    assert reply.json()["rooms"][0]["room_id"] == big
    reply = admin_get(server, admin, f"/v1/rooms?{search}&order_by=name&dir=b")
    assert [room["room_id"] for room in reply.json()["rooms"]] == [encrypted, big, small]
    reply = admin_get(server, admin, f"/v1/rooms?{search}&public_rooms=true")
    assert [room["room_id"] for room in reply.json()["rooms"]] == [big]
    reply = admin_get(server, admin, f"/v1/rooms?{search}&public_rooms=false")
    assert [room["room_id"] for room in reply.json()["rooms"]] == [small, encrypted]
    reply = admin_get(server, admin, f"/v1/rooms?{search}&empty_rooms=true")
    assert reply.json()["rooms"] == []

    first = admin_get(server, admin, f"/v1/rooms?{search}&limit=2").json()
    assert [room["room_id"] for room in first["rooms"]] == [small, big]
    assert first["next_batch"] == 2 and "prev_batch" not in first
    second = admin_get(server, admin, f"/v1/rooms?{search}&limit=2&from=2").json()
    assert [room["room_id"] for room in second["rooms"]] == [encrypted]
    assert second["prev_batch"] == 0 and "next_batch" not in second
    assert second["offset"] == 2 and second["total_rooms"] == 3


@pytest.mark.parametrize(
    "order_by",
    [
        "name",
        "canonical_alias",
        "joined_members",
        "joined_local_members",
        "version",
        "creator",
        "encryption",
        "federatable",
        "public",
        "join_rules",
        "guest_access",
        "history_visibility",
        "state_events",
        "alphabetical",
        "size",
    ],
)
def test_every_order_lists_every_room_once(
    server: RunningServer, admin: Session, alice: Session, order_by: str
) -> None:
    create_room(server, alice, name="ordered")
    forwards = admin_get(server, admin, f"/v1/rooms?order_by={order_by}").json()
    backwards = admin_get(server, admin, f"/v1/rooms?order_by={order_by}&dir=b").json()
    ids = [room["room_id"] for room in forwards["rooms"]]
    assert len(ids) == len(set(ids)) == forwards["total_rooms"]
    assert [room["room_id"] for room in backwards["rooms"]] == ids[::-1]


@pytest.mark.parametrize(
    "query",
    [
        "order_by=bogus",
        "dir=x",
        "from=-1",
        "limit=many",
        "search_term=",
        "public_rooms=maybe",
        "empty_rooms=1",
    ],
)
def test_list_rooms_refuses_bad_parameters(
    server: RunningServer, admin: Session, query: str
) -> None:
    reply = admin_get(server, admin, f"/v1/rooms?{query}")
    assert reply.status == 400, reply.body
    assert reply.errcode == "M_INVALID_PARAM"


# -- details, members, state --------------------------------------------------------------


def test_room_details_members_and_state(
    server: RunningServer, admin: Session, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat", name="Details", topic="All of it")
    assert join(server, bob, room_id).status == 200

    reply = admin_get(server, admin, f"/v1/rooms/{room_id}")
    assert reply.status == 200, reply.body
    details = reply.json()
    assert details["room_id"] == room_id
    assert details["name"] == "Details"
    assert details["topic"] == "All of it"
    assert details["avatar"] is None
    assert details["joined_members"] == 2
    assert details["joined_local_members"] == 2
    # one device each, from registering
    assert details["joined_local_devices"] == 2
    assert details["forgotten"] is False
    assert details["creator"] == alice.user_id
    assert details["join_rules"] == "public"

    reply = admin_get(server, admin, f"/v1/rooms/{room_id}/members")
    assert reply.status == 200
    assert reply.json() == {"members": sorted([alice.user_id, bob.user_id]), "total": 2}

    reply = admin_get(server, admin, f"/v1/rooms/{room_id}/state")
    assert reply.status == 200
    state = reply.json()["state"]
    keys = {(event["type"], event["state_key"]) for event in state}
    assert ("m.room.create", "") in keys
    assert ("m.room.member", bob.user_id) in keys
    assert len(state) == details["state_events"]
    assert all(event["room_id"] == room_id and "event_id" in event for event in state)

    reply = admin_get(server, admin, f"/v1/rooms/{room_id}/state?type=m.room.member")
    members = reply.json()["state"]
    assert {event["state_key"] for event in members} == {alice.user_id, bob.user_id}


def test_forgotten_once_every_local_member_forgot(
    server: RunningServer, admin: Session, alice: Session
) -> None:
    room_id = create_room(server, alice)
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}"
    assert authed(alice, "POST", url + "/leave", {}).status == 200
    assert admin_get(server, admin, f"/v1/rooms/{room_id}").json()["forgotten"] is False
    assert authed(alice, "POST", url + "/forget", {}).status == 200
    details = admin_get(server, admin, f"/v1/rooms/{room_id}").json()
    assert details["forgotten"] is True
    assert details["joined_members"] == 0


# -- block --------------------------------------------------------------------------------


def test_block_refuses_joins_until_unblocked(
    server: RunningServer, admin: Session, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    path = f"/v1/rooms/{room_id}/block"
    assert admin_get(server, admin, path).json() == {"block": False}
    for body, errcode in (({}, "M_MISSING_PARAM"), ({"block": "yes"}, "M_BAD_JSON")):
        reply = authed(admin, "PUT", server.url + ADMIN + path, body)
        assert (reply.status, reply.errcode) == (400, errcode), body
    assert admin_get(server, admin, path).json() == {"block": False}

    reply = authed(admin, "PUT", server.url + ADMIN + path, {"block": True})
    assert reply.status == 200, reply.body
    assert reply.json() == {"block": True}
    assert admin_get(server, admin, path).json() == {"block": True, "user_id": admin.user_id}

    refused = join(server, bob, room_id)
    assert refused.status == 403
    assert refused.errcode == "M_FORBIDDEN"
    invite = authed(
        alice,
        "POST",
        f"{server.url}{CLIENT}/rooms/{quote(room_id)}/invite",
        {"user_id": bob.user_id},
    )
    assert invite.status == 403
    assert invite.errcode == "M_FORBIDDEN"
    # members may still talk and leave
    send = authed(
        alice,
        "PUT",
        f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/b1",
        {"msgtype": "m.text", "body": "still here"},
    )
    assert send.status == 200

    reply = authed(admin, "PUT", server.url + ADMIN + path, {"block": False})
    assert reply.json() == {"block": False}
    assert admin_get(server, admin, path).json() == {"block": False}
    assert join(server, bob, room_id).status == 200


def test_rooms_unknown_here_can_be_blocked_ahead(server: RunningServer, admin: Session) -> None:
    path = "/v1/rooms/!notyet:elsewhere.example/block"
    reply = authed(admin, "PUT", server.url + ADMIN + path, {"block": True})
    assert reply.status == 200
    assert admin_get(server, admin, path).json() == {"block": True, "user_id": admin.user_id}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [({}, "M_MISSING_PARAM"), ({"block": "yes"}, "M_BAD_JSON"), (b"not json", "M_NOT_JSON")],
)
def test_block_refuses_bad_bodies(
    server: RunningServer, admin: Session, body: Any, errcode: str
) -> None:
    path = "/v1/rooms/!some:test.localhost/block"
    reply = authed(admin, "PUT", server.url + ADMIN + path, body)
    assert reply.status == 400
    assert reply.errcode == errcode


# -- delete -------------------------------------------------------------------------------


def test_delete_room_v2_moves_people_and_aliases_then_purges(
    server: RunningServer, admin: Session, alice: Session, bob: Session
) -> None:
    alias_name = "doomed-" + alice.user_id[1:].split(":")[0]
    room_id = create_room(
        server, alice, preset="public_chat", name="Doomed", room_alias_name=alias_name
    )
    assert join(server, bob, room_id).status == 200
    send = authed(
        bob,
        "PUT",
        f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/d1",
        {"msgtype": "m.text", "body": "bad content"},
    )
    assert send.status == 200

    reply = authed(
        admin,
        "DELETE",
        f"{server.url}{ADMIN}/v2/rooms/{room_id}",
        {
            "new_room_user_id": admin.user_id,
            "room_name": "Closed",
            "message": "Moved here",
            "block": True,
        },
    )
    assert reply.status == 200, reply.body
    delete_id = reply.json()["delete_id"]
    status = wait_for_deletion(server, admin, delete_id)
    assert status["status"] == "complete", status
    assert status["delete_id"] == delete_id
    assert status["room_id"] == room_id
    shutdown = status["shutdown_room"]
    assert sorted(shutdown["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    assert shutdown["failed_to_kick_users"] == []
    assert shutdown["local_aliases"] == [f"#{alias_name}:{SERVER_NAME}"]
    new_room_id = shutdown["new_room_id"]
    assert new_room_id.startswith("!")

    by_room = admin_get(server, admin, f"/v2/rooms/{room_id}/delete_status")
    assert by_room.status == 200
    assert by_room.json() == {"results": [status]}

    # purged: the room is gone from the admin API, and stays blocked
    assert admin_get(server, admin, f"/v1/rooms/{room_id}").status == 404
    listed = admin_get(server, admin, f"/v1/rooms?search_term={quote(room_id)}").json()
    assert listed["total_rooms"] == 0
    block = admin_get(server, admin, f"/v1/rooms/{room_id}/block").json()
    assert block == {"block": True, "user_id": admin.user_id}
    refused = join(server, bob, room_id)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")

    # the people and the alias are in the new room, which says why
    new_room = admin_get(server, admin, f"/v1/rooms/{new_room_id}").json()
    assert new_room["name"] == "Closed"
    assert new_room["canonical_alias"] is None
    members = admin_get(server, admin, f"/v1/rooms/{new_room_id}/members").json()["members"]
    assert set(members) == {admin.user_id, alice.user_id, bob.user_id}
    messages = authed(
        bob, "GET", f"{server.url}{CLIENT}/rooms/{quote(new_room_id)}/messages?dir=b&limit=50"
    )
    assert messages.status == 200, messages.body
    notices = [
        (event["sender"], event["content"].get("body"))
        for event in messages.json()["chunk"]
        if event["type"] == "m.room.message"
    ]
    assert notices == [(admin.user_id, "Moved here")]
    joined = authed(bob, "GET", f"{server.url}{CLIENT}/joined_rooms").json()["joined_rooms"]
    assert new_room_id in joined and room_id not in joined
    alias = quote(f"#{alias_name}:{SERVER_NAME}")
    resolved = request("GET", f"{server.url}{CLIENT}/directory/room/{alias}")
    assert resolved.status == 200, resolved.body
    assert resolved.json()["room_id"] == new_room_id
    # and bob cannot speak in the old room any more
    again = authed(
        bob,
        "PUT",
        f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/d2",
        {"msgtype": "m.text", "body": "still?"},
    )
    assert again.status == 403
    # nothing of the old room is served any more
    old = f"{server.url}{CLIENT}/rooms/{quote(room_id)}"
    for path in (f"/event/{quote(send.json()['event_id'])}", "/messages?dir=b", "/state"):
        gone = authed(bob, "GET", old + path)
        assert gone.status in (403, 404), (path, gone.status, gone.body)


def test_delete_without_purge_keeps_the_room_blocked_and_empty(
    server: RunningServer, admin: Session, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    assert join(server, bob, room_id).status == 200
    reply = authed(
        admin, "DELETE", f"{server.url}{ADMIN}/v2/rooms/{room_id}", {"purge": False, "block": True}
    )
    status = wait_for_deletion(server, admin, reply.json()["delete_id"])
    assert status["status"] == "complete", status
    assert status["shutdown_room"]["new_room_id"] is None
    assert sorted(status["shutdown_room"]["kicked_users"]) == sorted([alice.user_id, bob.user_id])

    details = admin_get(server, admin, f"/v1/rooms/{room_id}").json()
    assert details["joined_members"] == 0
    assert details["forgotten"] is True
    refused = join(server, bob, room_id)
    assert refused.status == 403
    assert refused.errcode == "M_FORBIDDEN"


def test_delete_room_v1_answers_when_done(
    server: RunningServer, admin: Session, alice: Session
) -> None:
    room_id = create_room(server, alice)
    reply = authed(admin, "DELETE", f"{server.url}{ADMIN}/v1/rooms/{room_id}", {})
    assert reply.status == 200, reply.body
    assert reply.json() == {
        "kicked_users": [alice.user_id],
        "failed_to_kick_users": [],
        "local_aliases": [],
        "new_room_id": None,
    }
    assert admin_get(server, admin, f"/v1/rooms/{room_id}").status == 404
    # version 1 may block a room unknown here
    unknown = "!v1unknown:test.localhost"
    reply = authed(admin, "DELETE", f"{server.url}{ADMIN}/v1/rooms/{unknown}", {"block": True})
    assert reply.status == 200
    assert admin_get(server, admin, f"/v1/rooms/{unknown}/block").json()["block"] is True


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b"", "M_NOT_JSON"),
        ({"block": "yes"}, "M_BAD_JSON"),
        ({"purge": 1}, "M_BAD_JSON"),
        ({"force_purge": "true"}, "M_BAD_JSON"),
        ({"message": 5}, "M_BAD_JSON"),
        ({"room_name": ["x"]}, "M_BAD_JSON"),
        ({"new_room_user_id": "@someone:elsewhere.example"}, "M_INVALID_PARAM"),
        ({"new_room_user_id": "not-a-user"}, "M_INVALID_PARAM"),
    ],
)
def test_delete_room_refuses_bad_bodies(
    server: RunningServer, admin: Session, alice: Session, body: Any, errcode: str
) -> None:
    room_id = create_room(server, alice)
    reply = authed(admin, "DELETE", f"{server.url}{ADMIN}/v2/rooms/{room_id}", body)
    assert reply.status == 400, reply.body
    assert reply.errcode == errcode
    # nothing happened to the room
    assert admin_get(server, admin, f"/v1/rooms/{room_id}/members").json()["total"] == 1


@pytest.mark.parametrize(
    "path", ["/v1/rooms/!old:test.localhost/delete", "/v1/!old:test.localhost/delete"]
)
def test_removed_v1_delete_path_is_unrecognized(
    server: RunningServer, admin: Session, path: str
) -> None:
    reply = authed(admin, "POST", server.url + ADMIN + path, {})
    assert reply.status == 404
    assert reply.errcode == "M_UNRECOGNIZED"
