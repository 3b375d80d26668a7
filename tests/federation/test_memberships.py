"""Invites, leaves and knocks between two Ranvier servers over TLS.

A (`first`, SQLite) and B (`second`, PostgreSQL). alice of A invites bob of B into a room
on A: B signs the invite, keeps it out of band and bob's /sync shows it with the room's
stripped state. Requests "from A" are also made here in the test process, signed with
A's own key, to check B's refusals of invites and A's of make_leave and make_knock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from ranvier.config.signing_key import load_signing_key
from ranvier.protocol.event_builder import EventTemplate, build_event
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.request_auth import authorization_header
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.protocol.signing import sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ok, refused, sync_until
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session

FEDERATION = "/_matrix/federation"


def signing_key_of(server: FederatingServer) -> ServerSigningKey:
    raw = yaml.safe_load(Path(server.config_path).read_text())
    key_path = Path(raw["signing_key_path"])
    if not key_path.is_absolute():
        key_path = Path(server.config_path).parent / key_path
    return load_signing_key(str(key_path))


def signed(
    origin: FederatingServer,
    destination: FederatingServer,
    method: str,
    uri: str,
    body: Any = None,
) -> Reply:
    """`uri` on `destination`, signed as `origin` with origin's own key."""
    header = authorization_header(
        signing_key_of(origin),
        method=method,
        uri=uri,
        origin=origin.server_name,
        destination=destination.server_name,
        content=body,
    )
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": header, "Content-Type": "application/json"}
    return destination.request(method, uri, data, headers)


def create_room(server: FederatingServer, session: Session, **body: Any) -> str:
    room_id: str = ok(server.authed(session, "POST", CLIENT + "/createRoom", body))["room_id"]
    return room_id


def member_state(server: FederatingServer, session: Session, room_id: str, user_id: str) -> Any:
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
    return server.authed(session, "GET", path)


def invite_event(
    inviter_server: FederatingServer,
    sender: str,
    target: str,
    room_id: str,
    room_version: str = "10",
) -> dict[str, Any]:
    """An invite signed by `inviter_server`, in a room no server holds (enough for the
    invitee's server, which is not in the room)."""
    version = KNOWN_ROOM_VERSIONS[room_version]
    event = build_event(
        EventTemplate("m.room.member", sender, {"membership": "invite"}, room_id, target),
        room_version=version,
        prev_events=[],
        current_state={},
        server_name=inviter_server.server_name,
        signing_key=signing_key_of(inviter_server),
    )
    return {"event_id": event.event_id, "pdu": event.pdu}


@pytest.fixture(scope="module")
def users(two_servers: ServerPair) -> tuple[Session, Session]:
    """alice on A, bob on B."""
    return register(two_servers.first, "alice"), register(two_servers.second, "bob")


# -- invites -------------------------------------------------------------------------------


def test_a_remote_user_is_invited_and_sees_the_invite_with_the_room_state(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(a, alice, name="Lobby of A", topic="hello")
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}))
    # A's room holds the invite, signed by B too
    invite = ok(member_state(a, alice, room_id, bob.user_id))
    assert invite["membership"] == "invite"
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    invite_state = response["rooms"]["invite"][room_id]["invite_state"]["events"]
    by_type = {event["type"]: event for event in invite_state}
    assert by_type["m.room.name"]["content"] == {"name": "Lobby of A"}
    assert by_type["m.room.topic"]["content"]["topic"] == "hello"
    assert by_type["m.room.create"]["sender"] == alice.user_id
    own = invite_state[-1]
    assert own["type"] == "m.room.member"
    assert own["state_key"] == bob.user_id
    assert own["sender"] == alice.user_id
    assert own["content"]["membership"] == "invite"
    # stripped: no PDU fields reach the client
    assert "signatures" not in by_type["m.room.name"]


def test_create_room_invites_a_remote_user_through_their_server(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    carol = register(a, "carol_created")
    invited = [bob.user_id, carol.user_id]
    room_id = create_room(a, alice, name="Made with invites", invite=invited, is_direct=True)
    # B signed bob's invite: his /sync shows it with the room's stripped state
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    invite_state = response["rooms"]["invite"][room_id]["invite_state"]["events"]
    by_type = {event["type"]: event for event in invite_state}
    assert by_type["m.room.name"]["content"] == {"name": "Made with invites"}
    own = invite_state[-1]
    assert (own["state_key"], own["content"]["membership"]) == (bob.user_id, "invite")
    assert own["content"]["is_direct"] is True
    # the local invitee is invited as before, and bob can accept through A
    assert ok(member_state(a, alice, room_id, carol.user_id))["membership"] == "invite"
    ok(b.authed(bob, "POST", f"{CLIENT}/join/{quote(room_id)}"))
    assert ok(member_state(a, alice, room_id, bob.user_id))["membership"] == "join"


def test_create_room_fails_as_synapse_when_a_remote_invite_is_refused(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, _ = users
    nobody = f"@nobody_created:{b.server_name}"
    body = {"name": "Refused invite", "invite": [nobody]}
    refused(a.authed(alice, "POST", CLIENT + "/createRoom", body), 404, "M_NOT_FOUND")
    # as Synapse: the room was made before the invites, and stays, without the invite
    rooms = ok(a.authed(alice, "GET", CLIENT + "/joined_rooms"))["joined_rooms"]
    names = {
        a.authed(alice, "GET", f"{CLIENT}/rooms/{quote(r)}/state/m.room.name").json().get("name")
        for r in rooms
    }
    assert "Refused invite" in names


def test_inviting_again_is_answered_as_done(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, _ = two_servers
    alice, bob = users
    room_id = create_room(a, alice)
    path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
    ok(a.authed(alice, "POST", path, {"user_id": bob.user_id}))
    ok(a.authed(alice, "POST", path, {"user_id": bob.user_id}))
    assert ok(member_state(a, alice, room_id, bob.user_id))["membership"] == "invite"


def test_an_invite_of_an_unknown_remote_user_is_refused_and_not_kept(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, _ = users
    room_id = create_room(a, alice)
    nobody = f"@nobody:{b.server_name}"
    path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
    refused(a.authed(alice, "POST", path, {"user_id": nobody}), 404, "M_NOT_FOUND")
    refused(member_state(a, alice, room_id, nobody), 404, "M_NOT_FOUND")


def test_an_invite_to_an_unreachable_server_is_502(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, _ = two_servers
    alice, _ = users
    room_id = create_room(a, alice)
    path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
    # nothing listens on port 9 of loopback
    refused(a.authed(alice, "POST", path, {"user_id": "@x:localhost:9"}), 502, "M_UNKNOWN")
    refused(member_state(a, alice, room_id, "@x:localhost:9"), 404, "M_NOT_FOUND")


def test_the_invite_api_signs_and_keeps_a_valid_invite(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = f"!madeup:{a.server_name}"
    invite = invite_event(a, alice.user_id, bob.user_id, room_id)
    state = [
        {
            "type": "m.room.name",
            "state_key": "",
            "sender": alice.user_id,
            "content": {"name": "Made up"},
        }
    ]
    uri = f"{FEDERATION}/v2/invite/{quote(room_id)}/{quote(invite['event_id'])}"
    body = {"room_version": "10", "event": invite["pdu"], "invite_room_state": state}
    answer = ok(signed(a, b, "PUT", uri, body))
    event = answer["event"]
    assert set(event["signatures"]) == {a.server_name, b.server_name}
    assert {k: v for k, v in event.items() if k != "signatures"} == {
        k: v for k, v in invite["pdu"].items() if k != "signatures"
    }
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    shown = response["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert shown[0] == {**state[0]}
    assert shown[-1]["content"] == {"membership": "invite"}
    # the same invite again is signed again, and kept once
    assert ok(signed(a, b, "PUT", uri, body))["event"]["signatures"] == event["signatures"]


def test_the_invite_v1_api_answers_in_its_own_shape(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = f"!madeup1:{a.server_name}"
    invite = invite_event(a, alice.user_id, bob.user_id, room_id, room_version="1")
    uri = f"{FEDERATION}/v1/invite/{quote(room_id)}/{quote(invite['event_id'])}"
    answer = ok(signed(a, b, "PUT", uri, invite["pdu"]))
    assert answer[0] == 200
    assert b.server_name in answer[1]["event"]["signatures"]


def test_the_invite_api_refuses_what_it_must_not_sign(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = f"!refused:{a.server_name}"

    def put(invite: dict[str, Any], *, version: str = "10", event_id: str | None = None) -> Reply:
        uri = f"{FEDERATION}/v2/invite/{quote(room_id)}/{quote(event_id or invite['event_id'])}"
        return signed(a, b, "PUT", uri, {"room_version": version, "event": invite["pdu"]})

    good = invite_event(a, alice.user_id, bob.user_id, room_id)
    # not signed at all
    uri = f"{FEDERATION}/v2/invite/{quote(room_id)}/{quote(good['event_id'])}"
    refused(
        b.request("PUT", uri, {"room_version": "10", "event": good["pdu"]}), 401, "M_UNAUTHORIZED"
    )
    # a room version B does not know
    body = refused(put(good, version="999"), 400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert body["room_version"] == "999"
    # the event is not the one the path names
    refused(put(good, event_id="$other"), 400, "M_INVALID_PARAM")
    # an invite of a user of another server (A's own alice)
    refused(put(invite_event(a, alice.user_id, alice.user_id, room_id)), 400, "M_INVALID_PARAM")
    # an inviter that is not a user of the asking server
    refused(
        put(invite_event(a, f"@mallory:{b.server_name}", bob.user_id, room_id)),
        400,
        "M_INVALID_PARAM",
    )
    # a user B does not have
    refused(
        put(invite_event(a, alice.user_id, f"@ghost:{b.server_name}", room_id)), 404, "M_NOT_FOUND"
    )
    # into a room of B's whose server ACL denies A (ACLs match host names: every test
    # server is `localhost`)
    acl = {"allow": ["*"], "deny": ["localhost"]}
    closed = create_room(
        b, bob, room_version="10", initial_state=[{"type": "m.room.server_acl", "content": acl}]
    )
    carl = register(b, "carl")
    uri = f"{FEDERATION}/v2/invite/{quote(closed)}"
    invite = invite_event(a, alice.user_id, carl.user_id, closed)
    body = {"room_version": "10", "event": invite["pdu"]}
    refused(signed(a, b, "PUT", f"{uri}/{quote(invite['event_id'])}", body), 403, "M_FORBIDDEN")
    # a user who has left the server
    dora = register(b, "dora")
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": dora.user_id},
        "password": DEFAULT_PASSWORD,
    }
    ok(b.authed(dora, "POST", CLIENT + "/account/deactivate", {"auth": auth}))
    refused(put(invite_event(a, alice.user_id, dora.user_id, room_id)), 403, "M_FORBIDDEN")
    # a forged signature (content changed after signing)
    forged = invite_event(a, alice.user_id, bob.user_id, room_id)
    forged["pdu"] = {**forged["pdu"], "origin_server_ts": forged["pdu"]["origin_server_ts"] + 1}
    # (as Synapse and SyTest: 403 M_FORBIDDEN, where the spec suggests M_INVALID_PARAM)
    refused(put(forged, event_id=forged["event_id"]), 403, "M_FORBIDDEN")
    # none of these reached bob
    response = ok(b.authed(bob, "GET", CLIENT + "/sync?timeout=0&full_state=true"))
    assert room_id not in response.get("rooms", {}).get("invite", {})


# -- make_leave and make_knock -------------------------------------------------------------


def test_make_leave_gives_a_template_for_a_user_of_the_asking_server(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(a, alice, room_version="10")
    uri = f"{FEDERATION}/v1/make_leave/{quote(room_id)}/{quote(bob.user_id)}"
    # bob has nothing to leave yet
    refused(signed(b, a, "GET", uri), 403, "M_FORBIDDEN")
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}))
    answer = ok(signed(b, a, "GET", uri))
    event = answer["event"]
    assert answer["room_version"] == "10"
    assert event["type"] == "m.room.member"
    assert event["sender"] == event["state_key"] == bob.user_id
    assert event["content"] == {"membership": "leave"}
    assert event["origin"] == a.server_name
    assert "signatures" not in event
    # a user of another server
    uri = f"{FEDERATION}/v1/make_leave/{quote(room_id)}/{quote(alice.user_id)}"
    refused(signed(b, a, "GET", uri), 403, "M_FORBIDDEN")
    # an unknown room
    uri = f"{FEDERATION}/v1/make_leave/{quote('!nowhere:' + a.server_name)}/{quote(bob.user_id)}"
    refused(signed(b, a, "GET", uri), 404, "M_NOT_FOUND")
    # unsigned
    uri = f"{FEDERATION}/v1/make_leave/{quote(room_id)}/{quote(bob.user_id)}"
    refused(a.request("GET", uri), 401, "M_UNAUTHORIZED")


def test_make_knock_follows_the_join_rules_and_versions(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    knockable = create_room(
        a,
        alice,
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    uri = f"{FEDERATION}/v1/make_knock/{quote(knockable)}/{quote(bob.user_id)}"
    answer = ok(signed(b, a, "GET", uri + "?ver=9&ver=10"))
    assert answer["room_version"] == "10"
    assert answer["event"]["content"] == {"membership": "knock"}
    assert answer["event"]["sender"] == bob.user_id
    # a version the asking server does not support
    body = refused(signed(b, a, "GET", uri + "?ver=9"), 400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert body["room_version"] == "10"
    # an invite-only room refuses knocks
    private = create_room(a, alice, room_version="10", preset="private_chat")
    uri = f"{FEDERATION}/v1/make_knock/{quote(private)}/{quote(bob.user_id)}?ver=10"
    refused(signed(b, a, "GET", uri), 403, "M_FORBIDDEN")
    # a room version without knocking
    old = create_room(a, alice, room_version="6")
    uri = f"{FEDERATION}/v1/make_knock/{quote(old)}/{quote(bob.user_id)}?ver=6"
    refused(signed(b, a, "GET", uri), 403, "M_FORBIDDEN")


# -- leaving and knocking through the resident server ----------------------------------------


def completed(server: FederatingServer, template: dict[str, Any], **content: Any) -> dict[str, Any]:
    """make_leave's or make_knock's template completed and signed as `server`."""
    version = KNOWN_ROOM_VERSIONS[template["room_version"]]
    pdu = dict(template["event"])
    pdu["content"] = {**pdu["content"], **content}
    pdu["origin_server_ts"] = int(time.time() * 1000)
    signed_pdu = sign_event(pdu, server.server_name, signing_key_of(server), version)
    return {"event_id": compute_event_id(signed_pdu, version), "pdu": signed_pdu}


def test_an_invited_user_rejects_the_invite_through_the_inviting_server(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(a, alice, name="To be declined")
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}))
    sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    ok(b.authed(bob, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", {"reason": "no thanks"}))
    # A's room has bob's leave, sent by B's server through make_leave and send_leave
    leave = ok(member_state(a, alice, room_id, bob.user_id))
    assert leave == {"membership": "leave", "reason": "no thanks"}
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("leave", {}))
    assert room_id not in response["rooms"].get("invite", {})
    (event,) = response["rooms"]["leave"][room_id]["timeline"]["events"]
    assert event["content"] == {"membership": "leave", "reason": "no thanks"}
    assert (event["sender"], event["state_key"]) == (bob.user_id, bob.user_id)


def test_send_leave_and_send_knock_take_checked_events_only(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(
        a,
        alice,
        room_version="10",
        name="Knock here",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    make = f"{FEDERATION}/v1/make_knock/{quote(room_id)}/{quote(bob.user_id)}?ver=10"
    knock = completed(b, ok(signed(b, a, "GET", make)), reason="let me in")
    send = f"{FEDERATION}/v1/send_knock/{quote(room_id)}/{quote(knock['event_id'])}"
    # the event named in the path must be the one sent
    wrong = f"{FEDERATION}/v1/send_knock/{quote(room_id)}/{quote('$not-it')}"
    refused(signed(b, a, "PUT", wrong, knock["pdu"]), 400, "M_INVALID_PARAM")
    # changed after signing
    forged = {**knock["pdu"], "origin_server_ts": knock["pdu"]["origin_server_ts"] + 1}
    refused(signed(b, a, "PUT", send, forged), 403, "M_FORBIDDEN")
    # a knock sent by another server than its sender's
    refused(signed(a, a, "PUT", send, knock["pdu"]), 403, "M_FORBIDDEN")
    # unsigned request
    refused(a.request("PUT", send, knock["pdu"]), 401, "M_UNAUTHORIZED")
    answer = ok(signed(b, a, "PUT", send, knock["pdu"]))
    by_type = {event["type"]: event for event in answer["knock_room_state"]}
    assert by_type["m.room.name"]["content"] == {"name": "Knock here"}
    assert by_type["m.room.create"]["room_id"] == room_id
    assert ok(member_state(a, alice, room_id, bob.user_id)) == {
        "membership": "knock",
        "reason": "let me in",
    }
    # sent again: the same answer, nothing new
    assert ok(signed(b, a, "PUT", send, knock["pdu"])) == answer
    # a knock is not a leave
    leave_path = f"{FEDERATION}/v2/send_leave/{quote(room_id)}/{quote(knock['event_id'])}"
    refused(signed(b, a, "PUT", leave_path, knock["pdu"]), 400, "M_INVALID_PARAM")
    # withdrawing the knock: make_leave, then send_leave v1 with its own answer
    template = ok(
        signed(b, a, "GET", f"{FEDERATION}/v1/make_leave/{quote(room_id)}/{quote(bob.user_id)}")
    )
    leave = completed(b, template)
    path = f"{FEDERATION}/v1/send_leave/{quote(room_id)}/{quote(leave['event_id'])}"
    assert ok(signed(b, a, "PUT", path, leave["pdu"])) == [200, {}]
    assert ok(member_state(a, alice, room_id, bob.user_id)) == {"membership": "leave"}


def test_a_user_knocks_on_a_remote_room_and_is_invited(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(
        a,
        alice,
        room_version="10",
        name="Knock to enter",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    path = f"{CLIENT}/knock/{quote(room_id)}?server_name={quote(a.server_name)}"
    assert ok(b.authed(bob, "POST", path, {"reason": "hello"})) == {"room_id": room_id}
    # with bob's profile, as a local knock carries it
    assert ok(member_state(a, alice, room_id, bob.user_id)) == {
        "membership": "knock",
        "reason": "hello",
        "displayname": "bob",
    }
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("knock", {}))
    knock_state = response["rooms"]["knock"][room_id]["knock_state"]["events"]
    by_type = {event["type"]: event for event in knock_state}
    assert by_type["m.room.name"]["content"] == {"name": "Knock to enter"}
    assert knock_state[-1]["content"]["membership"] == "knock"
    assert "signatures" not in by_type["m.room.create"]
    # alice lets bob in with an invite, which B keeps out of band as well
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}))
    sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))


def test_a_user_knocks_on_a_remote_room_by_its_alias(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(
        a,
        alice,
        room_version="12",
        room_alias_name="knock-by-alias",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    alias = f"#knock-by-alias:{a.server_name}"
    assert ok(b.authed(bob, "POST", f"{CLIENT}/knock/{quote(alias)}", {})) == {"room_id": room_id}
    assert ok(member_state(a, alice, room_id, bob.user_id))["membership"] == "knock"
    # withdrawn through A again, found from the knock
    ok(b.authed(bob, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave"))
    assert ok(member_state(a, alice, room_id, bob.user_id)) == {"membership": "leave"}


def test_a_knock_on_a_room_without_knocking_is_refused(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(a, alice, room_version="10", preset="private_chat")
    path = f"{CLIENT}/knock/{quote(room_id)}?server_name={quote(a.server_name)}"
    refused(b.authed(bob, "POST", path, {}), 403, "M_FORBIDDEN")
    refused(member_state(a, alice, room_id, bob.user_id), 404, "M_NOT_FOUND")


def test_an_invited_user_accepts_by_joining_through_the_inviting_server(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    # room version 12: the room ID names no server, the invite does
    room_id = create_room(a, alice, room_version="12", name="Come in")
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}))
    sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    assert ok(b.authed(bob, "POST", f"{CLIENT}/join/{quote(room_id)}", {})) == {"room_id": room_id}
    assert ok(member_state(a, alice, room_id, bob.user_id))["membership"] == "join"
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("join", {}))
    assert room_id not in response["rooms"].get("invite", {})
    assert ok(member_state(b, bob, room_id, alice.user_id))["membership"] == "join"
    # joined, bob leaves like any member: B's queue takes the leave to A
    ok(b.authed(bob, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave"))
    deadline = time.monotonic() + 15
    while ok(member_state(a, alice, room_id, bob.user_id))["membership"] != "leave":
        assert time.monotonic() < deadline, "A never heard of bob's leave"
        time.sleep(0.2)


def test_an_invite_is_rejected_even_when_the_inviting_server_is_down(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    """Last in the module: A is stopped, and B then backs off from it."""
    a, b = two_servers
    alice, bob = users
    room_id = create_room(a, alice, name="Soon gone")
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id}))
    sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    assert a.stop() == 0, a.log()
    ok(b.authed(bob, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave"))
    response = sync_until(b, bob, lambda r: room_id in r.get("rooms", {}).get("leave", {}))
    assert room_id not in response["rooms"].get("invite", {})
    # the leave made here is the room's timeline
    (leave,) = response["rooms"]["leave"][room_id]["timeline"]["events"]
    assert (leave["type"], leave["sender"]) == ("m.room.member", bob.user_id)
    assert leave["content"] == {"membership": "leave"}
    # left for good: a second leave has nothing to leave
    refused(b.authed(bob, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave"), 403, "M_FORBIDDEN")
