"""Room behaviours clients and SyTest rely on, over real HTTP on both engines: what
creation_content may not decide, custom content in POST /join, guests leaving when guest
access is revoked, and tombstones that point nowhere."""

from __future__ import annotations

import itertools
from typing import Any

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed

CLIENT = "/_matrix/client/v3"
SERVER_NAME = "test.localhost"
_names = itertools.count()

server = module_server(**REGISTRATION_CONFIG, allow_guest_access=True)


def ok(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    room_id: str = ok(authed(session, "POST", server.url + CLIENT + "/createRoom", body))["room_id"]
    return room_id


def state(server: RunningServer, session: Session, room_id: str, key: str) -> dict[str, Any]:
    return ok(authed(session, "GET", f"{server.url}{CLIENT}/rooms/{room_id}/state/{key}"))


def put_state(
    server: RunningServer, session: Session, room_id: str, key: str, content: dict[str, Any]
) -> Reply:
    return authed(session, "PUT", f"{server.url}{CLIENT}/rooms/{room_id}/state/{key}", content)


def guest(server: RunningServer) -> Session:
    body = ok(request("POST", f"{server.url}{CLIENT}/register?kind=guest", {}))
    return Session(body["user_id"], body["access_token"], body["device_id"])


def test_creation_content_cannot_change_the_room_version_or_creator(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    # as Synapse: the server's values win over creation_content's, instead of a refusal
    # (the request succeeds) or a create event that disagrees with the room (before)
    room_id = create_room(
        server,
        alice,
        room_version="10",
        creation_content={"room_version": "1", "creator": bob.user_id, "m.federate": False},
    )
    create = state(server, alice, room_id, "m.room.create")
    assert create["room_version"] == "10"
    assert create["creator"] == alice.user_id
    assert create["m.federate"] is False
    # without room_version in the request, the default version is the one written, and the
    # rest of creation_content is kept (SyTest "POST /createRoom ignores attempts to set the
    # room version via creation_content", which was refused with 400)
    room_id = create_room(server, alice, creation_content={"room_version": "test", "t": "a"})
    create = state(server, alice, room_id, "m.room.create")
    assert create["room_version"] not in ("test", None)
    assert create["t"] == "a"


def test_setting_the_same_state_twice_answers_the_same_event(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    first = ok(put_state(server, alice, room_id, "a.test.state.type", {"a_key": "a_value"}))
    again = ok(put_state(server, alice, room_id, "a.test.state.type", {"a_key": "a_value"}))
    # SyTest "Setting state twice is idempotent", as Synapse
    assert again["event_id"] == first["event_id"]
    changed = ok(put_state(server, alice, room_id, "a.test.state.type", {"a_key": "other"}))
    assert changed["event_id"] != first["event_id"]
    # the same content from another sender is a new event
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {}))
    ok(
        put_state(
            server,
            alice,
            room_id,
            "m.room.power_levels/",
            _levels_with(server, alice, room_id, bob.user_id),
        )
    )
    by_bob = ok(put_state(server, bob, room_id, "a.test.state.type", {"a_key": "other"}))
    assert by_bob["event_id"] != changed["event_id"]
    # and a member who left is refused, not answered with their old event
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/leave", {}))
    reply = put_state(server, bob, room_id, "a.test.state.type", {"a_key": "other"})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


def _levels_with(
    server: RunningServer, session: Session, room_id: str, user_id: str
) -> dict[str, Any]:
    levels = state(server, session, room_id, "m.room.power_levels")
    levels["users"][user_id] = 50
    return levels


def test_join_keeps_custom_content(server: RunningServer, alice: Session, bob: Session) -> None:
    name = f"custom{next(_names)}"
    room_id = create_room(server, alice, preset="public_chat", room_alias_name=name)
    url = f"{server.url}{CLIENT}/join/%23{name}:{SERVER_NAME}"
    joined = ok(authed(bob, "POST", url, {"foo": "bar", "displayname": "Bob here"}))
    assert joined["room_id"] == room_id
    member = state(server, alice, room_id, f"m.room.member/{bob.user_id}")
    # SyTest "POST /join/:room_alias can join a room with custom content"; a per-room
    # display name is kept over the global one, as Synapse does
    assert member == {"membership": "join", "foo": "bar", "displayname": "Bob here"}

    # by room ID too, and the body cannot change the membership or claim an authoriser
    other = create_room(server, alice, preset="public_chat")
    body = {"foo": 1, "membership": "leave", "join_authorised_via_users_server": alice.user_id}
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/join/{other}", body))
    member = state(server, alice, other, f"m.room.member/{bob.user_id}")
    assert member["membership"] == "join"
    assert member["foo"] == 1
    assert "join_authorised_via_users_server" not in member

    # a display name that is no name is refused before anything is sent
    third = create_room(server, alice, preset="public_chat")
    reply = authed(bob, "POST", f"{server.url}{CLIENT}/join/{third}", {"displayname": 5})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = authed(bob, "POST", f"{server.url}{CLIENT}/join/{third}", {"displayname": "x" * 257})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


def test_guests_leave_when_guest_access_is_revoked(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    ok(put_state(server, alice, room_id, "m.room.guest_access", {"guest_access": "can_join"}))
    visitor = guest(server)
    ok(authed(visitor, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {}))
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {}))
    member = state(server, alice, room_id, f"m.room.member/{visitor.user_id}")
    assert member["membership"] == "join"
    assert member["kind"] == "guest"
    # a profile change rewrites the join event and keeps the guest marked as one
    profile_url = f"{server.url}{CLIENT}/profile/{visitor.user_id}/displayname"
    ok(authed(visitor, "PUT", profile_url, {"displayname": "creeper"}))
    member = state(server, alice, room_id, f"m.room.member/{visitor.user_id}")
    assert (member["displayname"], member["kind"]) == ("creeper", "guest")

    # a change that keeps guest access leaves the guest in place
    ok(
        put_state(
            server, alice, room_id, "m.room.guest_access", {"guest_access": "can_join", "x": 1}
        )
    )
    assert state(server, alice, room_id, f"m.room.member/{visitor.user_id}")["membership"] == (
        "join"
    )

    ok(put_state(server, alice, room_id, "m.room.guest_access", {"guest_access": "forbidden"}))
    # the guest left by itself (no power level needed); the registered member stays
    member_url = f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.member/"
    left = ok(authed(alice, "GET", member_url + visitor.user_id + "?format=event"))
    assert left["content"]["membership"] == "leave"
    assert left["sender"] == visitor.user_id
    assert state(server, alice, room_id, f"m.room.member/{bob.user_id}")["membership"] == "join"
    # and cannot come back
    reply = authed(visitor, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


def test_a_tombstone_must_point_to_another_room(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    # SyTest "Cannot send tombstone event that points to the same room"
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.tombstone/t{next(_names)}"
    reply = authed(alice, "PUT", url, {"replacement_room": room_id})
    assert reply.status == 400, reply.body
    reply = put_state(server, alice, room_id, "m.room.tombstone", {"replacement_room": room_id})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = put_state(server, alice, room_id, "m.room.tombstone", {"body": "gone"})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    refused = authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.tombstone")
    assert refused.status == 404
    other = create_room(server, alice)
    ok(put_state(server, alice, room_id, "m.room.tombstone", {"replacement_room": other}))


def test_bans_and_kicks_may_be_written_as_member_state(
    server: RunningServer, alice: Session, bob: Session, carol: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    outsider = "@bob:elsewhere.example"
    # SyTest "/upgrade copies ban events to the new room" bans a remote user this way
    ok(put_state(server, alice, room_id, f"m.room.member/{outsider}", {"membership": "ban"}))
    assert state(server, alice, room_id, f"m.room.member/{outsider}") == {"membership": "ban"}
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {}))
    ok(authed(carol, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {}))
    kick = {"membership": "leave", "reason": "out"}
    ok(put_state(server, alice, room_id, f"m.room.member/{bob.user_id}", kick))
    assert state(server, alice, room_id, f"m.room.member/{bob.user_id}") == kick
    # the auth rules still decide: carol has no power to ban
    reply = put_state(
        server, carol, room_id, f"m.room.member/{alice.user_id}", {"membership": "ban"}
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    # invites keep their endpoint
    reply = put_state(
        server, alice, room_id, f"m.room.member/{bob.user_id}", {"membership": "invite"}
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
