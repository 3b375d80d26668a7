"""Invites by email address as identity servers and clients reach them (the paths SyTest's
Third-Party ID tests take): the identity server's onbind by POST as Sydent sends it, the
invite key checked at its key_validity_url, a refused invite reported back, createRoom's
invite_3pid, the inviter in the invitee's invite_state, and the identity-server binds under
/_matrix/client/unstable; on both engines."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, register
from tests.notify.fake_identity_server import FakeIdentityServer
from tests.notify.fake_identity_server import Session as IsSession

ONBIND = "/_matrix/federation/v1/3pid/onbind"
UNSTABLE = "/_matrix/client/unstable"


def _user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}_{secrets.token_hex(3)}")


def _address() -> str:
    return f"{secrets.token_hex(4)}@mail.example.org"


def _invite_fields(identity_server: FakeIdentityServer, address: str) -> dict[str, str]:
    return {
        "id_server": identity_server.name,
        "id_access_token": identity_server.access_token,
        "medium": "email",
        "address": address,
    }


def _state(server: RunningServer, user: Session, room_id: str) -> list[dict[str, Any]]:
    reply = authed(user, "GET", server.url + CLIENT + f"/rooms/{quote(room_id)}/state")
    assert reply.status == 200, reply.body
    state: list[dict[str, Any]] = reply.json()
    return state


def _membership(server: RunningServer, user: Session, room_id: str, target: str) -> str | None:
    for event in _state(server, user, room_id):
        if event["type"] == "m.room.member" and event["state_key"] == target:
            membership: str = event["content"]["membership"]
            return membership
    return None


def _stored_invite(
    server: RunningServer, inviter: Session, identity_server: FakeIdentityServer
) -> tuple[str, str, str]:
    """(room, address, token): an invite of an unbound address, left with the identity
    server and as an m.room.third_party_invite."""
    address = _address()
    room_id = create_room(server.url, inviter, preset="private_chat")
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/invite"
    reply = authed(inviter, "POST", url, _invite_fields(identity_server, address))
    assert reply.status == 200, reply.body
    [token] = [
        e["state_key"]
        for e in _state(server, inviter, room_id)
        if e["type"] == "m.room.third_party_invite"
    ]
    return room_id, address, token


def _onbind(
    server: RunningServer,
    room_id: str,
    address: str,
    inviter: Session,
    invitee: Session,
    signed: dict[str, Any],
    method: str = "POST",
) -> Reply:
    pending = {
        "medium": "email",
        "address": address,
        "mxid": invitee.user_id,
        "room_id": room_id,
        "sender": inviter.user_id,
        "signed": signed,
    }
    body = {"medium": "email", "address": address, "mxid": invitee.user_id, "invites": [pending]}
    return request(method, server.url + ONBIND, body)


def _invite_state(server: RunningServer, user: Session, room_id: str) -> list[dict[str, Any]]:
    reply = authed(user, "GET", server.url + CLIENT + "/sync")
    assert reply.status == 200, reply.body
    events: list[dict[str, Any]] = reply.json()["rooms"]["invite"][room_id]["invite_state"][
        "events"
    ]
    return events


def test_an_onbind_posted_as_sydent_does_invites_and_the_invitee_sees_the_inviter(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice, bob = _user(server, "alice"), _user(server, "bob")
    room_id, address, token = _stored_invite(server, alice, identity_server)
    asked = len(identity_server.received("/pubkey/isvalid"))
    signed = identity_server.signed_invite(bob.user_id, token)
    reply = _onbind(server, room_id, address, alice, bob, signed)
    assert (reply.status, reply.json()) == (200, {})
    assert _membership(server, alice, room_id, bob.user_id) == "invite"
    # the key that signed the proof was checked with the identity server first
    assert len(identity_server.received("/pubkey/isvalid")) == asked + 1
    # the invitee's invite_state carries the inviter's own membership, before the invite
    members = [e for e in _invite_state(server, bob, room_id) if e["type"] == "m.room.member"]
    assert [(e["state_key"], e["content"]["membership"]) for e in members] == [
        (alice.user_id, "join"),
        (bob.user_id, "invite"),
    ]
    assert all(set(e) <= {"type", "state_key", "sender", "content"} for e in members[:-1])
    joined = authed(bob, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/join", {})
    assert joined.status == 200, joined.body


def test_an_onbind_whose_invite_is_refused_says_so_and_invites_nobody(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice, bob = _user(server, "alice"), _user(server, "bob")
    room_id, address, token = _stored_invite(server, alice, identity_server)
    signed = identity_server.signed_invite(bob.user_id, token)

    # a proof signed by a key the room's invite does not carry
    forged = {**signed, "signatures": {"evil.example": {"ed25519:0": "AAAA"}}}
    reply = _onbind(server, room_id, address, alice, bob, forged)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    # the identity server has revoked the key that signed it
    identity_server.revoked_keys.add(identity_server.public_key)
    try:
        reply = _onbind(server, room_id, address, alice, bob, signed)
    finally:
        identity_server.revoked_keys.clear()
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    # the identity server cannot say whether the key is still valid
    identity_server.isvalid_status = 500
    try:
        reply = _onbind(server, room_id, address, alice, bob, signed)
    finally:
        identity_server.isvalid_status = 200
    assert (reply.status, reply.errcode) == (502, "M_UNKNOWN")

    assert _membership(server, alice, room_id, bob.user_id) is None
    # the same proof, once the key checks out, is accepted (by PUT, the spec's method)
    reply = _onbind(server, room_id, address, alice, bob, signed, method="PUT")
    assert reply.status == 200, reply.body
    assert _membership(server, alice, room_id, bob.user_id) == "invite"


def test_create_room_invites_by_email_address(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice, bob = _user(server, "alice"), _user(server, "bob")
    bound, unbound = _address(), _address()
    identity_server.bindings[("email", bound)] = bob.user_id
    reply = authed(
        alice,
        "POST",
        server.url + CLIENT + "/createRoom",
        {
            "name": "By mail",
            "invite_3pid": [
                _invite_fields(identity_server, bound),
                _invite_fields(identity_server, unbound),
            ],
        },
    )
    assert reply.status == 200, reply.body
    room_id = reply.json()["room_id"]
    # the bound address's owner is invited; the other address is left an invite to redeem
    assert _membership(server, alice, room_id, bob.user_id) == "invite"
    stored = identity_server.stored_invites[-1]
    assert (stored["address"], stored["room_id"]) == (unbound, room_id)
    assert stored["room_name"] == "By mail"
    tpi = [e for e in _state(server, alice, room_id) if e["type"] == "m.room.third_party_invite"]
    assert len(tpi) == 1 and tpi[0]["content"]["display_name"] == "i...@e..."


def test_create_room_invite_3pid_refusals_create_no_room(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice = _user(server, "alice")
    url = server.url + CLIENT + "/createRoom"
    good = _invite_fields(identity_server, _address())
    lookups = len(identity_server.received("/lookup"))
    missing = {k: v for k, v in good.items() if k != "id_access_token"}
    refusals = [
        ({**good, "medium": "msisdn"}, 400, "M_UNRECOGNIZED"),
        ({**good, "id_server": "https://evil.example/x"}, 400, "M_INVALID_PARAM"),
        (missing, 400, "M_MISSING_PARAM"),
        ({**good, "address": 7}, 400, "M_BAD_JSON"),
    ]
    for entry, status, errcode in refusals:
        reply = authed(alice, "POST", url, {"invite_3pid": [good, entry]})
        assert (reply.status, reply.errcode) == (status, errcode), entry
    joined = authed(alice, "GET", server.url + CLIENT + "/joined_rooms")
    assert joined.json() == {"joined_rooms": []}
    # nothing was asked of the identity server for the refused requests
    assert len(identity_server.received("/lookup")) == lookups


def test_identity_server_binds_are_served_under_unstable(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice = _user(server, "alice")
    address = _address()
    sid, secret = secrets.token_hex(4), secrets.token_hex(8)
    identity_server.sessions[sid] = IsSession(secret, "email", address)
    body = {
        "id_server": identity_server.name,
        "id_access_token": identity_server.access_token,
        "sid": sid,
        "client_secret": secret,
    }
    reply = authed(alice, "POST", server.url + UNSTABLE + "/account/3pid/bind", body)
    assert reply.status == 200, reply.body
    assert identity_server.bindings[("email", address)] == alice.user_id
    reply = authed(
        alice,
        "POST",
        server.url + UNSTABLE + "/account/3pid/unbind",
        {"medium": "email", "address": address},
    )
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "success"})
    assert ("email", address) not in identity_server.bindings


def test_a_join_with_third_party_signed_redeems_the_invite(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice, bob, carol = _user(server, "alice"), _user(server, "bob"), _user(server, "carol")
    room_id, _, token = _stored_invite(server, alice, identity_server)
    join = server.url + CLIENT + f"/join/{quote(room_id)}"
    # the room is invite-only: no proof, no entry
    assert authed(bob, "POST", join, {}).status == 403
    signed = identity_server.signed_invite(bob.user_id, token, sender=alice.user_id)

    forged = {**signed, "signatures": {"evil.example": {"ed25519:0": "AAAA"}}}
    reply = authed(bob, "POST", join, {"third_party_signed": forged})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    # a proof for bob is no use to carol
    reply = authed(carol, "POST", join, {"third_party_signed": signed})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    no_token = {k: v for k, v in signed.items() if k != "token"}
    reply = authed(bob, "POST", join, {"third_party_signed": no_token})
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
    domain = alice.user_id.partition(":")[2]
    by_alias = server.url + CLIENT + "/join/" + quote("#nowhere:" + domain)
    reply = authed(bob, "POST", by_alias, {"third_party_signed": signed})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    for user in (bob, carol):
        assert _membership(server, alice, room_id, user.user_id) is None

    by_id = server.url + CLIENT + f"/rooms/{quote(room_id)}/join"
    reply = authed(bob, "POST", by_id, {"third_party_signed": signed})
    assert reply.status == 200, reply.body
    assert _membership(server, alice, room_id, bob.user_id) == "join"
    # joining again with the proof leaves the membership as it is (no second invite)
    reply = authed(bob, "POST", join, {"third_party_signed": signed})
    assert reply.status == 200, reply.body
    assert _membership(server, alice, room_id, bob.user_id) == "join"
