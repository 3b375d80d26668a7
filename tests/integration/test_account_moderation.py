"""Suspending and locking accounts (admin APIs: Synapse's PUT /_synapse/admin/v1/suspend and
the spec's /_matrix/client/v1/admin/{suspend,lock}), and what a suspended user may still do,
over real HTTP on both engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, make_admin, register

SPEC_ADMIN = "/_matrix/client/v1/admin"


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


def synapse_suspend(server: RunningServer, admin: Session, user_id: str, body: Any) -> Reply:
    url = f"{server.url}/_synapse/admin/v1/suspend/{quote(user_id)}"
    return authed(admin, "PUT", url, body)


def spec_admin(
    server: RunningServer, session: Session, method: str, what: str, user_id: str, body: Any = None
) -> Reply:
    return authed(session, method, f"{server.url}{SPEC_ADMIN}/{what}/{quote(user_id)}", body)


def create_room(server: RunningServer, session: Session) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def send(server: RunningServer, session: Session, room_id: str, txn: str) -> Reply:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{txn}"
    return authed(session, "PUT", url, {"msgtype": "m.text", "body": "hello"})


def assert_suspended(reply: Reply) -> None:
    assert (reply.status, reply.errcode) == (403, "M_USER_SUSPENDED"), reply.body


def test_suspended_user_can_read_leave_and_redact_own_events_only(
    server: RunningServer, admin: Session
) -> None:
    sam = register(server.url, "sam")
    other = register(server.url, "otto")
    room = create_room(server, other)
    second = create_room(server, other)
    for room_id in (room, second):
        reply = authed(sam, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})
        assert reply.status == 200
    own = send(server, sam, room, "m1").json()["event_id"]
    # in a room of sam's own, where sam may redact anyone's events
    sams_room = create_room(server, sam)
    reply = authed(other, "POST", f"{server.url}{CLIENT}/join/{quote(sams_room)}", {})
    assert reply.status == 200
    theirs = send(server, other, sams_room, "o1").json()["event_id"]

    reply = synapse_suspend(server, admin, sam.user_id, {"suspend": True})
    assert reply.status == 200, reply.body
    assert reply.json() == {f"user_{sam.user_id}_suspended": True}
    assert spec_admin(server, admin, "GET", "suspend", sam.user_id).json() == {"suspended": True}

    # refused: messages, state, creating rooms, joining, inviting, profile changes
    assert_suspended(send(server, sam, room, "m2"))
    state_url = f"{server.url}{CLIENT}/rooms/{quote(room)}/state/m.room.topic"
    assert_suspended(authed(sam, "PUT", state_url, {"topic": "x"}))
    assert_suspended(authed(sam, "POST", server.url + CLIENT + "/createRoom", {}))
    third = create_room(server, other)
    assert_suspended(authed(sam, "POST", f"{server.url}{CLIENT}/join/{quote(third)}", {}))
    invite = {"user_id": register(server.url, "ivy").user_id}
    invite_url = f"{server.url}{CLIENT}/rooms/{quote(room)}/invite"
    assert_suspended(authed(sam, "POST", invite_url, invite))
    name_url = f"{server.url}{CLIENT}/profile/{quote(sam.user_id)}/displayname"
    assert_suspended(authed(sam, "PUT", name_url, {"displayname": "Sam"}))
    redact_theirs = f"{server.url}{CLIENT}/rooms/{quote(sams_room)}/redact/{quote(theirs)}/r1"
    assert_suspended(authed(sam, "PUT", redact_theirs, {}))

    # still allowed: reading, redacting their own events, leaving, whoami
    reply = authed(sam, "GET", f"{server.url}{CLIENT}/rooms/{quote(room)}/messages?dir=b")
    assert reply.status == 200
    assert authed(sam, "GET", server.url + CLIENT + "/sync").status == 200
    redact_own = f"{server.url}{CLIENT}/rooms/{quote(room)}/redact/{quote(own)}/r2"
    assert authed(sam, "PUT", redact_own, {}).status == 200
    reply = authed(sam, "POST", f"{server.url}{CLIENT}/rooms/{quote(second)}/leave", {})
    assert reply.status == 200, reply.body
    assert authed(sam, "GET", server.url + CLIENT + "/account/whoami").status == 200
    # others are unaffected
    assert send(server, other, room, "o2").status == 200

    # lifted through the spec's endpoint: sending works again
    reply = spec_admin(server, admin, "PUT", "suspend", sam.user_id, {"suspended": False})
    assert reply.json() == {"suspended": False}
    assert send(server, sam, room, "m3").status == 200
    assert authed(sam, "PUT", name_url, {"displayname": "Sam"}).status == 200


def test_lock_through_the_spec_endpoint(server: RunningServer, admin: Session) -> None:
    lou = register(server.url, "lou")
    assert spec_admin(server, admin, "GET", "lock", lou.user_id).json() == {"locked": False}
    reply = spec_admin(server, admin, "PUT", "lock", lou.user_id, {"locked": True})
    assert reply.json() == {"locked": True}
    assert spec_admin(server, admin, "GET", "lock", lou.user_id).json() == {"locked": True}
    reply = authed(lou, "GET", server.url + CLIENT + "/account/whoami")
    assert (reply.status, reply.errcode) == (401, "M_USER_LOCKED")
    assert reply.json()["soft_logout"] is True
    reply = spec_admin(server, admin, "PUT", "lock", lou.user_id, {"locked": False})
    assert reply.status == 200
    assert authed(lou, "GET", server.url + CLIENT + "/account/whoami").status == 200


def test_moderation_refusals(server: RunningServer, admin: Session) -> None:
    user = register(server.url, "mallory")
    other_admin = make_admin(server.config_path, "root2")
    for what, key in (("suspend", "suspended"), ("lock", "locked")):
        # not an admin: refused before any lookup, whoever the target
        for target in (user.user_id, "@nobody:test.localhost"):
            reply = spec_admin(server, user, "GET", what, target)
            assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
            reply = spec_admin(server, user, "PUT", what, target, {key: True})
            assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        reply = spec_admin(server, admin, "GET", what, "@someone:elsewhere.example")
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
        reply = spec_admin(server, admin, "GET", what, "@nobody:test.localhost")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        reply = spec_admin(server, admin, "PUT", what, other_admin.user_id, {key: True})
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        reply = spec_admin(server, admin, "PUT", what, admin.user_id, {key: True})
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
        reply = spec_admin(server, admin, "PUT", what, user.user_id, {key: "yes"})
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
        reply = spec_admin(server, admin, "PUT", what, user.user_id, {})
        assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
        assert (
            request("GET", f"{server.url}{SPEC_ADMIN}/{what}/{quote(user.user_id)}").status == 401
        )
    # Synapse's endpoint keeps Synapse's answers
    reply = synapse_suspend(server, user, user.user_id, {"suspend": True})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = synapse_suspend(server, admin, "@nobody:test.localhost", {"suspend": True})
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = synapse_suspend(server, admin, "@someone:elsewhere.example", {"suspend": True})
    assert reply.status == 400
    reply = synapse_suspend(server, admin, user.user_id, {"suspend": 1})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    # none of it changed anything
    assert send(server, user, create_room(server, user), "x").status == 200


def test_capabilities_tell_admins_they_may_moderate(server: RunningServer, admin: Session) -> None:
    reply = authed(admin, "GET", server.url + CLIENT + "/capabilities")
    moderation = reply.json()["capabilities"]["m.account_moderation"]
    assert moderation == {"suspend": True, "lock": True}
    user = register(server.url, "nina")
    reply = authed(user, "GET", server.url + CLIENT + "/capabilities")
    assert "m.account_moderation" not in reply.json()["capabilities"]
