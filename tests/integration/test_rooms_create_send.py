"""Creating rooms and sending into them over real HTTP, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed

CLIENT = "/_matrix/client/v3"


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


@pytest.mark.parametrize("version", ["1", "6", "10", "11", "12"])
def test_create_room_in_each_version(server: RunningServer, alice: Session, version: str) -> None:
    room_id = create_room(server, alice, room_version=version, name="Versioned")
    assert room_id.startswith("!")
    assert (":" in room_id) == (version != "12")


def test_send_message_and_state(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice, preset="private_chat", topic="hello")
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/txn1"
    first = authed(alice, "PUT", url, {"msgtype": "m.text", "body": "hi"})
    assert first.status == 200, first.body
    again = authed(alice, "PUT", url, {"msgtype": "m.text", "body": "hi"})
    assert again.json()["event_id"] == first.json()["event_id"]
    other = authed(alice, "PUT", url.replace("txn1", "txn2"), {"msgtype": "m.text", "body": "hi"})
    assert other.json()["event_id"] != first.json()["event_id"]

    state = authed(
        alice, "PUT", f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.name", {"name": "N"}
    )
    assert state.status == 200, state.body
    assert state.json()["event_id"].startswith("$")


def test_non_member_cannot_send(server: RunningServer, alice: Session, bob: Session) -> None:
    room_id = create_room(server, alice)
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/t"
    reply = authed(bob, "PUT", url, {"msgtype": "m.text", "body": "intruder"})
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


def test_unknown_room_looks_like_a_room_one_is_not_in(
    server: RunningServer, alice: Session
) -> None:
    url = f"{server.url}{CLIENT}/rooms/!nowhere:test.localhost/send/m.room.message/t"
    reply = authed(alice, "PUT", url, {"body": "x"})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


def test_create_room_refusals(server: RunningServer, alice: Session) -> None:
    url = server.url + CLIENT + "/createRoom"
    unsupported = authed(alice, "POST", url, {"room_version": "99"})
    assert (unsupported.status, unsupported.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    bad_preset = authed(alice, "POST", url, {"preset": "party"})
    assert (bad_preset.status, bad_preset.errcode) == (400, "M_BAD_JSON")
    for wrong_type in (
        {"creation_content": "m.federate"},
        {"creation_content": ["m.federate"]},
        {"is_direct": "true"},
        {"invite": "@bob:test.localhost"},
        {"initial_state": [{"type": "m.room.topic", "content": "no"}]},
        {"power_level_content_override": 50},
    ):
        reply = authed(alice, "POST", url, wrong_type)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), wrong_type
    untyped = authed(alice, "POST", url, {"initial_state": [{"content": {}}]})
    assert (untyped.status, untyped.errcode) == (400, "M_MISSING_PARAM")
    before = authed(alice, "GET", server.url + CLIENT + "/joined_rooms").json()["joined_rooms"]
    bad_alias = authed(alice, "POST", url, {"room_alias_name": "a:b"})
    assert (bad_alias.status, bad_alias.errcode) == (400, "M_INVALID_PARAM")
    create_room(server, alice, room_alias_name="taken")
    taken = authed(alice, "POST", url, {"room_alias_name": "taken"})
    assert (taken.status, taken.errcode) == (400, "M_ROOM_IN_USE")
    # the refusals created nothing: only the room that took the alias is new
    after = authed(alice, "GET", server.url + CLIENT + "/joined_rooms").json()["joined_rooms"]
    assert len(set(after) - set(before)) == 1
    # the creator's power to change power levels is removed: the initial state is invalid
    invalid = authed(
        alice,
        "POST",
        url,
        {"room_version": "10", "power_level_content_override": {"users": {}, "state_default": 101}},
    )
    assert (invalid.status, invalid.errcode) == (400, "M_INVALID_ROOM_STATE")
    unauthenticated = authed(Session("@x:test.localhost", "nope", "D"), "POST", url, {})
    assert (unauthenticated.status, unauthenticated.errcode) == (401, "M_UNKNOWN_TOKEN")


def test_state_of_other_members_is_refused(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice)
    url = f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.member/{bob.user_id}"
    reply = authed(alice, "PUT", url, {"membership": "join"})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


def test_transaction_ids_are_scoped_to_the_endpoint(server: RunningServer, alice: Session) -> None:
    first_room = create_room(server, alice)
    second_room = create_room(server, alice)
    body = {"msgtype": "m.text", "body": "same txn"}
    sends = [
        authed(alice, "PUT", f"{server.url}{CLIENT}/rooms/{room}/send/{kind}/shared-txn", body)
        for room in (first_room, second_room)
        for kind in ("m.room.message", "org.example.other")
    ]
    assert all(reply.status == 200 for reply in sends), [r.body for r in sends]
    # four endpoints, four events: one txn ID means one request only on the same path
    assert len({reply.json()["event_id"] for reply in sends}) == 4


def test_an_empty_state_key_may_be_written_as_a_trailing_slash(
    server: RunningServer, alice: Session
) -> None:
    # what matrix-js-sdk and other SDKs send for an empty state key
    room_id = create_room(server, alice)
    state = f"{server.url}{CLIENT}/rooms/{room_id}/state"
    put = authed(alice, "PUT", f"{state}/com.example.slashed/", {"v": 1})
    assert put.status == 200, put.body
    for path in ("com.example.slashed/", "com.example.slashed"):
        got = authed(alice, "GET", f"{state}/{path}?format=event")
        assert got.status == 200, got.body
        assert got.json()["event_id"] == put.json()["event_id"]
        assert (got.json()["state_key"], got.json()["content"]) == ("", {"v": 1})
    # a state key with an encoded slash is a key of its own, not a path
    keyed = authed(alice, "PUT", f"{state}/com.example.slashed/a%2Fb", {"v": 2})
    assert keyed.status == 200, keyed.body
    got = authed(alice, "GET", f"{state}/com.example.slashed/a%2Fb?format=event")
    assert (got.json()["state_key"], got.json()["content"]) == ("a/b", {"v": 2})
    assert authed(alice, "GET", f"{state}/com.example.slashed/").json() == {"v": 1}
