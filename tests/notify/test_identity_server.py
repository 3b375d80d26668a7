"""Identity servers, as a client and the identity server see them: binding an address,
unbinding it (signed by the homeserver), and invites by email address, found by a hashed
lookup or stored with the identity server; refusals; on both engines."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    Session,
    authed,
    create_room,
    register,
)
from tests.notify.conftest import INVITE_CLIENT_LOCATION, add_validated_email
from tests.notify.fake_identity_server import FakeIdentityServer, sha256_lookup
from tests.notify.fake_identity_server import Session as IsSession


def _user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}_{secrets.token_hex(3)}")


def _validated_session(identity_server: FakeIdentityServer, address: str) -> tuple[str, str]:
    sid, secret = secrets.token_hex(4), secrets.token_hex(8)
    identity_server.sessions[sid] = IsSession(secret, "email", address)
    return sid, secret


def _bind(
    server: RunningServer, user: Session, identity_server: FakeIdentityServer, sid: str, secret: str
) -> Reply:
    body = {
        "id_server": identity_server.name,
        "id_access_token": identity_server.access_token,
        "sid": sid,
        "client_secret": secret,
    }
    return authed(user, "POST", server.url + CLIENT + "/account/3pid/bind", body)


def _unbind(server: RunningServer, user: Session, address: str, **extra: str) -> Reply:
    body = {"medium": "email", "address": address, **extra}
    return authed(user, "POST", server.url + CLIENT + "/account/3pid/unbind", body)


def test_bind_then_unbind_through_the_identity_server_it_was_bound_to(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice = _user(server, "alice")
    address = f"{secrets.token_hex(4)}@mail.example.org"
    sid, secret = _validated_session(identity_server, address)
    reply = _bind(server, alice, identity_server, sid, secret)
    assert reply.status == 200, reply.body
    assert identity_server.bindings[("email", address)] == alice.user_id
    bind = identity_server.received("/3pid/bind")[-1]
    assert bind.authorization == f"Bearer {identity_server.access_token}"
    assert bind.body == {"sid": sid, "client_secret": secret, "mxid": alice.user_id}
    # no id_server: the homeserver remembers where the address was bound
    reply = _unbind(server, alice, address)
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "success"})
    assert ("email", address) not in identity_server.bindings
    unbind = identity_server.received("/3pid/unbind")[-1]
    assert unbind.body == {
        "mxid": alice.user_id,
        "threepid": {"medium": "email", "address": address},
    }
    assert unbind.authorization is not None and unbind.authorization.startswith("X-Matrix ")
    # once unbound, nothing is known of it any more
    again = _unbind(server, alice, address)
    assert again.json() == {"id_server_unbind_result": "no-support"}


def test_an_identity_server_that_does_not_unbind_answers_no_support(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice = _user(server, "stubborn")
    address = f"{secrets.token_hex(4)}@mail.example.org"
    sid, secret = _validated_session(identity_server, address)
    assert _bind(server, alice, identity_server, sid, secret).status == 200
    identity_server.unbind_status = 501
    try:
        reply = _unbind(server, alice, address, id_server=identity_server.name)
    finally:
        identity_server.unbind_status = 200
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "no-support"})


def test_bind_refusals(server: RunningServer, identity_server: FakeIdentityServer) -> None:
    alice = _user(server, "refused")
    address = f"{secrets.token_hex(4)}@mail.example.org"
    sid, secret = _validated_session(identity_server, address)
    identity_server.sessions[sid].validated = False
    # the identity server's own error is passed on
    reply = _bind(server, alice, identity_server, sid, secret)
    assert (reply.status, reply.errcode) == (400, "M_SESSION_NOT_VALIDATED")
    reply = _bind(server, alice, identity_server, "no-such-sid", secret)
    assert (reply.status, reply.errcode) == (404, "M_NO_VALID_SESSION")
    url = server.url + CLIENT + "/account/3pid/bind"
    missing = authed(alice, "POST", url, {"id_server": identity_server.name, "sid": sid})
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    body = {"id_access_token": "t", "sid": sid, "client_secret": secret}
    for bad in ("https://evil.example/x", "evil.example/path", "a b"):
        reply = authed(alice, "POST", url, {**body, "id_server": bad})
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), bad
    unreachable = authed(alice, "POST", url, {**body, "id_server": "127.0.0.1:1"})
    assert unreachable.status == 502
    assert identity_server.bindings.get(("email", address)) is None
    wrong_medium = authed(
        alice,
        "POST",
        server.url + CLIENT + "/account/3pid/unbind",
        {"medium": "fax", "address": "x"},
    )
    assert (wrong_medium.status, wrong_medium.errcode) == (400, "M_BAD_JSON")


def _invite(
    server: RunningServer,
    inviter: Session,
    room_id: str,
    identity_server: FakeIdentityServer,
    **body: str,
) -> Reply:
    full = {
        "id_server": identity_server.name,
        "id_access_token": identity_server.access_token,
        "medium": "email",
        **body,
    }
    return authed(inviter, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/invite", full)


def _state(server: RunningServer, user: Session, room_id: str) -> list[dict[str, object]]:
    reply = authed(user, "GET", server.url + CLIENT + f"/rooms/{quote(room_id)}/state")
    assert reply.status == 200, reply.body
    state: list[dict[str, object]] = reply.json()
    return state


def test_an_invite_by_email_finds_the_bound_user(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice, bob = _user(server, "host"), _user(server, "guest")
    address = f"{secrets.token_hex(4)}@mail.example.org"
    identity_server.bindings[("email", address)] = bob.user_id
    room_id = create_room(server.url, alice, name="Dinner")
    reply = _invite(server, alice, room_id, identity_server, address=address)
    assert reply.status == 200, reply.body
    # looked up by hash with the identity server's pepper, never by the address itself
    lookup = identity_server.received("/lookup")[-1]
    assert lookup.body["addresses"] == [sha256_lookup("email", address, identity_server.pepper)]
    assert address not in str(lookup.body)
    member = [
        e
        for e in _state(server, alice, room_id)
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    ]
    assert [e["content"]["membership"] for e in member] == ["invite"]  # type: ignore[index]
    reply = authed(bob, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/join", {})
    assert reply.status == 200, reply.body


def test_an_invite_by_unknown_email_is_stored_with_the_identity_server(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice = _user(server, "host")
    address = f"{secrets.token_hex(4)}@nowhere.example.org"
    room_id = create_room(server.url, alice, name="Picnic")
    reply = _invite(server, alice, room_id, identity_server, address=address)
    assert reply.status == 200, reply.body
    stored = identity_server.stored_invites[-1]
    assert stored["address"] == address and stored["medium"] == "email"
    assert stored["room_id"] == room_id and stored["sender"] == alice.user_id
    assert stored["room_name"] == "Picnic"
    # email.invite_client_location, for the link in the identity server's mail
    assert stored["org.matrix.web_client_location"] == INVITE_CLIENT_LOCATION
    [invite] = [
        e for e in _state(server, alice, room_id) if e["type"] == "m.room.third_party_invite"
    ]
    content = invite["content"]
    assert isinstance(content, dict)
    assert content["display_name"] == "i...@e..."
    assert content["public_key"] == identity_server.public_key
    assert content["public_keys"][0]["key_validity_url"].startswith(
        f"https://{identity_server.name}/"
    )
    token = invite["state_key"]
    assert isinstance(token, str) and token

    # the address's owner registers and binds it: the identity server hands the invite over
    bob = _user(server, "newcomer")
    onbind = server.url + "/_matrix/federation/v1/3pid/onbind"
    pending = {
        "medium": "email",
        "address": address,
        "mxid": bob.user_id,
        "room_id": room_id,
        "sender": alice.user_id,
    }
    # a proof not signed by the identity server's key invites nobody
    forged = {**identity_server.signed_invite(bob.user_id, token), "token": token}
    forged["signatures"] = {"evil.example": {"ed25519:0": "AAAA"}}
    body = {"medium": "email", "address": address, "mxid": bob.user_id}
    reply = request("PUT", onbind, {**body, "invites": [{**pending, "signed": forged}]})
    # and the identity server is told (as Synapse answers)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert _membership(server, alice, room_id, bob.user_id) is None
    signed = identity_server.signed_invite(bob.user_id, token)
    reply = request("PUT", onbind, {**body, "invites": [{**pending, "signed": signed}]})
    assert reply.status == 200, reply.body
    member = _membership(server, alice, room_id, bob.user_id)
    assert member is not None and member["membership"] == "invite"
    assert member["third_party_invite"] == {"display_name": "i...@e...", "signed": signed}
    joined = authed(bob, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/join", {})
    assert joined.status == 200, joined.body
    malformed = request("PUT", onbind, {"medium": "email", "address": address})
    assert (malformed.status, malformed.errcode) == (400, "M_MISSING_PARAM")


def _membership(
    server: RunningServer, user: Session, room_id: str, target: str
) -> dict[str, object] | None:
    for event in _state(server, user, room_id):
        if event["type"] == "m.room.member" and event["state_key"] == target:
            content = event["content"]
            assert isinstance(content, dict)
            return content
    return None


def test_invite_by_email_refusals(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    alice, outsider = _user(server, "owner"), _user(server, "outsider")
    room_id = create_room(server.url, alice, name="Private")
    stored_before = len(identity_server.stored_invites)
    phone = _invite(server, alice, room_id, identity_server, medium="msisdn", address="4412345")
    assert (phone.status, phone.errcode) == (400, "M_UNRECOGNIZED")
    not_member = _invite(server, outsider, room_id, identity_server, address="x@example.org")
    assert (not_member.status, not_member.errcode) == (403, "M_FORBIDDEN")
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/invite"
    no_token = authed(
        alice,
        "POST",
        url,
        {"id_server": identity_server.name, "medium": "email", "address": "x@e.org"},
    )
    assert (no_token.status, no_token.errcode) == (400, "M_MISSING_PARAM")
    wrong_token = _invite(
        server, alice, room_id, identity_server, address="x@example.org", id_access_token="nope"
    )
    assert (wrong_token.status, wrong_token.errcode) == (401, "M_UNAUTHORIZED")
    down = _invite(
        server, alice, room_id, identity_server, address="x@e.org", id_server="127.0.0.1:1"
    )
    assert down.status == 502
    assert len(identity_server.stored_invites) == stored_before
    assert not [
        e for e in _state(server, alice, room_id) if e["type"] == "m.room.third_party_invite"
    ]


def test_deactivation_unbinds_what_was_bound_through_this_server(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    leaving = _user(server, "leaving")
    address = f"{secrets.token_hex(4)}@mail.example.org"
    sid, secret = _validated_session(identity_server, address)
    assert _bind(server, leaving, identity_server, sid, secret).status == 200
    localpart = leaving.user_id[1:].split(":")[0]
    body = {
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": DEFAULT_PASSWORD,
        }
    }
    reply = authed(leaving, "POST", server.url + CLIENT + "/account/deactivate", body)
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "success"})
    assert ("email", address) not in identity_server.bindings
    assert identity_server.received("/3pid/unbind")[-1].body["mxid"] == leaving.user_id
    # an account with nothing bound has nothing to unbind
    other = _user(server, "unbound")
    body["auth"]["identifier"]["user"] = other.user_id[1:].split(":")[0]  # type: ignore[index]
    reply = authed(other, "POST", server.url + CLIENT + "/account/deactivate", body)
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "no-support"})


def test_removing_an_address_unbinds_it_and_stops_its_mails(
    server: RunningServer, identity_server: FakeIdentityServer
) -> None:
    owner = _user(server, "remover")
    address = f"{secrets.token_hex(4)}@mail.example.org"
    add_validated_email(server, owner.user_id, address)
    pusher = {
        "kind": "email",
        "app_id": "m.email",
        "pushkey": address,
        "app_display_name": "Email",
        "device_display_name": address,
        "lang": "en",
        "data": {},
    }
    reply = authed(owner, "POST", server.url + CLIENT + "/pushers/set", pusher)
    assert reply.status == 200, reply.body
    sid, secret = _validated_session(identity_server, address)
    assert _bind(server, owner, identity_server, sid, secret).status == 200
    delete = server.url + CLIENT + "/account/3pid/delete"
    # an id_server that is not a host refuses before anything is removed
    bad = authed(owner, "POST", delete, {"medium": "email", "address": address, "id_server": "a/b"})
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    reply = authed(owner, "POST", delete, {"medium": "email", "address": address})
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "success"})
    assert ("email", address) not in identity_server.bindings
    listed = authed(owner, "GET", server.url + CLIENT + "/account/3pid").json()["threepids"]
    assert listed == []
    assert authed(owner, "GET", server.url + CLIENT + "/pushers").json()["pushers"] == []
