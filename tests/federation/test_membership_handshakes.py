"""Membership handshakes with a server that gets them wrong, or is old (SyTest's
50federation/30room-join.pl, 35room-invite.pl and 50server-acl-endpoints.pl, in our own
words): a fake remote server (fake_server.py) sends Ranvier unsigned, forged, replayed
or non-canonical joins, leaves and invites, and serves only the v1 send_join and invite
endpoints when Ranvier's users join its room or invite its users.

Refusals are Synapse's, which SyTest holds servers to: a missing or wrong signature 403
M_FORBIDDEN, JSON a room version does not allow 400 M_BAD_JSON, a membership of another
server's user 403 M_FORBIDDEN. Rooms live on `first` (SQLite) or `second` (PostgreSQL).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.federation.client import is_unknown_endpoint
from ranvier.federation.errors import RemoteRequestFailed
from ranvier.protocol.event_builder import EventTemplate, build_unsigned_pdu
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from ranvier.protocol.signing import countersign_event, sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import in_section, ok, refused, sync_until
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session

FED = "/_matrix/federation"
VERSIONS = "ver=1&ver=2&ver=6&ver=10&ver=11"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def create_room(server: FederatingServer, owner: Session, **body: Any) -> str:
    room_id: str = ok(server.authed(owner, "POST", CLIENT + "/createRoom", body))["room_id"]
    return room_id


def membership(server: FederatingServer, user: Session, room_id: str, user_id: str) -> Any:
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
    reply = server.authed(user, "GET", path)
    return reply.json().get("membership") if reply.status == 200 else None


def template(
    fake: FakeServer, server: FederatingServer, kind: str, room_id: str, user_id: str
) -> tuple[RoomVersion, dict[str, Any]]:
    """make_join / make_leave / make_knock's template, with the fields the joining
    server adds (origin_server_ts; an event ID before room version 3)."""
    query = "" if kind == "leave" else f"?{VERSIONS}"
    uri = f"{FED}/v1/make_{kind}/{quote(room_id)}/{quote(user_id)}{query}"
    answer = ok(fake.request(server, "GET", uri))
    version = KNOWN_ROOM_VERSIONS[answer["room_version"]]
    pdu = dict(answer["event"])
    pdu["origin_server_ts"] = int(time.time() * 1000)
    if version.event_format is EventFormat.V1:
        pdu["event_id"] = f"${secrets.token_urlsafe(12)}:{fake.server_name}"
    return version, pdu


def send(
    fake: FakeServer, server: FederatingServer, endpoint: str, pdu: dict[str, Any], event_id: str
) -> Reply:
    """PUT /{endpoint}/{roomId}/{eventId}, endpoint such as "v1/send_join"."""
    uri = f"{FED}/{endpoint}/{quote(pdu['room_id'])}/{quote(event_id)}"
    return fake.request(server, "PUT", uri, pdu)


def unsigned_and_forged(
    fake: FakeServer, pdu: dict[str, Any], version: RoomVersion
) -> list[dict[str, Any]]:
    """`pdu` as a server that does not sign properly sends it: without signatures or
    hashes, with a made-up signature, and signed with a key that is not the fake's."""
    made_up = {**pdu, "signatures": {fake.server_name: {fake.signing_key.key_id: "a" * 86}}}
    other_key = ServerSigningKey.generate(fake.signing_key.key_id.partition(":")[2])
    wrong_key = sign_event(pdu, fake.server_name, other_key, version)
    return [pdu, made_up, wrong_key]


def event_id_of(pdu: dict[str, Any], version: RoomVersion) -> str:
    return compute_event_id(pdu, version)


def join_fake_user(
    fake: FakeServer, server: FederatingServer, room_id: str, user_id: str
) -> dict[str, Any]:
    version, pdu = template(fake, server, "join", room_id, user_id)
    join = fake.sign(pdu, version)
    return ok(send(fake, server, "v2/send_join", join.pdu, join.event_id))  # type: ignore[no-any-return]


@dataclass
class Users:
    alice: Session  # on first
    bob: Session  # on second
    extra: dict[str, Session] = field(default_factory=dict)


@pytest.fixture(scope="module")
def users(two_servers: ServerPair) -> Users:
    a, b = two_servers
    return Users(register(a, "alice"), register(b, "bob"))


# -- send_join ------------------------------------------------------------------------------


def test_send_join_refuses_unsigned_and_forged_joins_then_accepts_the_signed_one(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    for server, owner, version_id in (
        (two_servers.first, users.alice, "1"),
        (two_servers.second, users.bob, "10"),
    ):
        room_id = create_room(server, owner, preset="public_chat", room_version=version_id)
        joiner = fake.user(f"j{secrets.token_hex(3)}")
        version, pdu = template(fake, server, "join", room_id, joiner)
        for bad in unsigned_and_forged(fake, pdu, version):
            body = refused(
                send(fake, server, "v1/send_join", bad, event_id_of(bad, version)),
                403,
                "M_FORBIDDEN",
            )
            assert "sign" in body["error"]
        assert membership(server, owner, room_id, joiner) is None
        join = fake.sign(pdu, version)
        code, answer = ok(send(fake, server, "v1/send_join", join.pdu, join.event_id))
        assert code == 200
        assert {"m.room.create", "m.room.power_levels"} <= {e["type"] for e in answer["state"]}
        assert answer["auth_chain"]
        assert membership(server, owner, room_id, joiner) == "join"


def test_send_join_refuses_a_replayed_join_of_another_servers_user(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    a, b = two_servers
    room_id = create_room(b, users.bob, preset="public_chat", room_version="10")
    # the fake is in the room, so it may fetch alice's join
    join_fake_user(fake, b, room_id, fake.user("watcher"))
    ok(a.authed(users.alice, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={b.server_name}"))
    state = ok(b.authed(users.bob, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state"))
    (alice_join_id,) = [
        e["event_id"]
        for e in state
        if e["type"] == "m.room.member" and e["state_key"] == users.alice.user_id
    ]
    (alice_join,) = ok(fake.request(b, "GET", f"{FED}/v1/event/{quote(alice_join_id)}"))["pdus"]
    ok(a.authed(users.alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", {}))
    deadline = time.monotonic() + 20
    while membership(b, users.bob, room_id, users.alice.user_id) != "leave":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # the fake replays alice's (validly signed) join: it is not the fake's to send
    for endpoint in ("v1/send_join", "v2/send_join"):
        body = refused(send(fake, b, endpoint, alice_join, alice_join_id), 403, "M_FORBIDDEN")
        assert users.alice.user_id in body["error"]
    assert membership(b, users.bob, room_id, users.alice.user_id) == "leave"


def test_send_join_refuses_json_room_version_6_does_not_allow(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    a = two_servers.first
    room_id = create_room(a, users.alice, preset="public_chat", room_version="6")
    joiner = fake.user("floaty")
    version, pdu = template(fake, a, "join", room_id, joiner)
    for bad_value in (1.1, 2**53, -(2**53)):
        bad = fake.sign({**pdu, "content": {**pdu["content"], "bad_val": bad_value}}, version)
        refused(send(fake, a, "v2/send_join", bad.pdu, bad.event_id), 400, "M_BAD_JSON")
    assert membership(a, users.alice, room_id, joiner) is None
    # the same join without the bad value is fine
    join = fake.sign(pdu, version)
    ok(send(fake, a, "v2/send_join", join.pdu, join.event_id))
    assert membership(a, users.alice, room_id, joiner) == "join"


def test_send_join_answers_with_the_state_before_the_join_not_the_rooms_now(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    b = two_servers.second
    room_id = create_room(b, users.bob, preset="public_chat", room_version="10", topic="before")
    joiner = fake.user(f"late{secrets.token_hex(3)}")
    version, pdu = template(fake, b, "join", room_id, joiner)
    # the room moves on between make_join and send_join
    topic_path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic/"
    after_id = ok(b.authed(users.bob, "PUT", topic_path, {"topic": "after"}))["event_id"]

    # prev events the room does not have: no state to join on
    unknown_prev = fake.sign({**pdu, "prev_events": ["$" + "A" * 43]}, version)
    refused(
        send(fake, b, "v2/send_join", unknown_prev.pdu, unknown_prev.event_id), 403, "M_FORBIDDEN"
    )

    join = fake.sign(pdu, version)
    answer = ok(send(fake, b, "v2/send_join", join.pdu, join.event_id))
    by_key = {(e["type"], e["state_key"]): e for e in answer["state"]}
    assert by_key[("m.room.topic", "")]["content"]["topic"] == "before"
    state_ids = {event_id_of(e, version) for e in answer["state"]}
    assert after_id not in state_ids
    assert ("m.room.member", joiner) not in by_key
    # a retry is answered the same
    again = ok(send(fake, b, "v2/send_join", join.pdu, join.event_id))
    assert {event_id_of(e, version) for e in again["state"]} == state_ids
    # the room holds both: the later topic and the join
    assert ok(b.authed(users.bob, "GET", topic_path))["topic"] == "after"
    assert membership(b, users.bob, room_id, joiner) == "join"
    message = {"msgtype": "m.text", "body": "welcome"}
    ok(
        b.authed(
            users.bob, "PUT", f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t1", message
        )
    )


# -- send_leave -----------------------------------------------------------------------------


def test_send_leave_refuses_unsigned_forged_and_replayed_leaves(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    a, b = two_servers
    room_id = create_room(a, users.alice, preset="public_chat", room_version="10")
    leaver = fake.user(f"l{secrets.token_hex(3)}")
    join_fake_user(fake, a, room_id, leaver)
    # stays, so the fake may fetch bob's events
    join_fake_user(fake, a, room_id, fake.user("watcher"))
    version, pdu = template(fake, a, "leave", room_id, leaver)
    for bad in unsigned_and_forged(fake, pdu, version):
        refused(send(fake, a, "v1/send_leave", bad, event_id_of(bad, version)), 403, "M_FORBIDDEN")
    assert membership(a, users.alice, room_id, leaver) == "join"
    leave = fake.sign(pdu, version)
    assert ok(send(fake, a, "v1/send_leave", leave.pdu, leave.event_id)) == [200, {}]
    assert membership(a, users.alice, room_id, leaver) == "leave"

    # bob of B leaves and joins again; the fake replays his leave
    join_path = f"{CLIENT}/join/{quote(room_id)}?server_name={a.server_name}"
    ok(b.authed(users.bob, "POST", join_path))
    ok(b.authed(users.bob, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", {}))
    deadline = time.monotonic() + 20
    while membership(a, users.alice, room_id, users.bob.user_id) != "leave":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    state = ok(a.authed(users.alice, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state"))
    (bob_leave_id,) = [
        e["event_id"]
        for e in state
        if e["type"] == "m.room.member" and e["state_key"] == users.bob.user_id
    ]
    (bob_leave,) = ok(fake.request(a, "GET", f"{FED}/v1/event/{quote(bob_leave_id)}"))["pdus"]
    ok(b.authed(users.bob, "POST", join_path))
    assert membership(a, users.alice, room_id, users.bob.user_id) == "join"
    for endpoint in ("v1/send_leave", "v2/send_leave"):
        refused(send(fake, a, endpoint, bob_leave, bob_leave_id), 403, "M_FORBIDDEN")
    assert membership(a, users.alice, room_id, users.bob.user_id) == "join"


def test_a_leave_attaches_to_the_state_of_its_prev_events(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    a = two_servers.first
    room_id = create_room(a, users.alice, preset="public_chat", room_version="10", topic="old")
    leaver = fake.user(f"l{secrets.token_hex(3)}")
    join_fake_user(fake, a, room_id, leaver)
    join_fake_user(fake, a, room_id, fake.user("watcher"))
    version, pdu = template(fake, a, "leave", room_id, leaver)
    # the room moves on between make_leave and send_leave
    topic_path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic/"
    new_topic_id = ok(a.authed(users.alice, "PUT", topic_path, {"topic": "new"}))["event_id"]

    unknown_prev = fake.sign({**pdu, "prev_events": ["$" + "B" * 43]}, version)
    refused(
        send(fake, a, "v2/send_leave", unknown_prev.pdu, unknown_prev.event_id), 403, "M_FORBIDDEN"
    )
    assert membership(a, users.alice, room_id, leaver) == "join"

    leave = fake.sign(pdu, version)
    assert ok(send(fake, a, "v2/send_leave", leave.pdu, leave.event_id)) == {}
    uri = f"{FED}/v1/state_ids/{quote(room_id)}?event_id={quote(leave.event_id)}"
    at_leave = ok(fake.request(a, "GET", uri))["pdu_ids"]
    # the leave's branch never saw the new topic
    assert new_topic_id not in at_leave
    # the room holds both branches
    assert ok(a.authed(users.alice, "GET", topic_path))["topic"] == "new"
    assert membership(a, users.alice, room_id, leaver) == "leave"


def test_send_leave_refuses_json_room_version_6_does_not_allow(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    b = two_servers.second
    room_id = create_room(b, users.bob, preset="public_chat", room_version="6")
    leaver = fake.user("floaty")
    join_fake_user(fake, b, room_id, leaver)
    version, pdu = template(fake, b, "leave", room_id, leaver)
    bad = fake.sign({**pdu, "content": {**pdu["content"], "bad_val": 1.1}}, version)
    refused(send(fake, b, "v2/send_leave", bad.pdu, bad.event_id), 400, "M_BAD_JSON")
    assert membership(b, users.bob, room_id, leaver) == "join"


# -- inbound invites ------------------------------------------------------------------------


def fake_invite(
    fake: FakeServer, invitee: str, version_id: str, **extra_content: Any
) -> tuple[RoomVersion, dict[str, Any]]:
    """An invite from a room only the fake has (enough for the invitee's server, which
    is not in it), unsigned."""
    version = KNOWN_ROOM_VERSIONS[version_id]
    room_id = f"!{secrets.token_hex(6)}:{fake.server_name}"
    content = {"membership": "invite", **extra_content}
    pdu = build_unsigned_pdu(
        EventTemplate("m.room.member", fake.user("inviter"), content, room_id, invitee),
        room_version=version,
        prev_events=[],
        current_state={},
        server_name=fake.server_name,
    )
    return version, pdu


def test_invites_over_the_v1_api_must_be_signed_by_the_sender(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    for server, invitee in ((two_servers.first, users.alice), (two_servers.second, users.bob)):
        version, pdu = fake_invite(fake, invitee.user_id, "1")
        event_id = pdu["event_id"]
        uri = f"{FED}/v1/invite/{quote(pdu['room_id'])}/{quote(event_id)}"
        for bad in unsigned_and_forged(fake, pdu, version):
            refused(fake.request(server, "PUT", uri, bad), 403, "M_FORBIDDEN")
        invite = sign_event(pdu, fake.server_name, fake.signing_key, version)
        code, answer = ok(fake.request(server, "PUT", uri, invite))
        assert code == 200
        assert set(answer["event"]["signatures"]) == {fake.server_name, server.server_name}
        response = sync_until(server, invitee, in_section("invite", pdu["room_id"]))
        events = response["rooms"]["invite"][pdu["room_id"]]["invite_state"]["events"]
        assert events[-1]["sender"] == fake.user("inviter")


def test_invites_with_json_room_version_6_does_not_allow_are_refused(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    server = two_servers.first
    for bad_value in (1.1, 2**60):
        version, pdu = fake_invite(fake, users.alice.user_id, "6", bad_val=bad_value)
        invite = sign_event(pdu, fake.server_name, fake.signing_key, version)
        event_id = compute_event_id(invite, version)
        uri = f"{FED}/v2/invite/{quote(pdu['room_id'])}/{quote(event_id)}"
        body = {"room_version": "6", "event": invite, "invite_room_state": []}
        refused(fake.request(server, "PUT", uri, body), 400, "M_BAD_JSON")
        response = ok(server.authed(users.alice, "GET", CLIENT + "/sync?timeout=0"))
        assert pdu["room_id"] not in response.get("rooms", {}).get("invite", {})


def invite_state_shown(server: FederatingServer, user: Session, room_id: str) -> list[Any]:
    response = sync_until(server, user, in_section("invite", room_id))
    return response["rooms"]["invite"][room_id]["invite_state"]["events"]  # type: ignore[no-any-return]


def put_invite(
    fake: FakeServer,
    server: FederatingServer,
    invite: Event,
    invite_room_state: list[Any],
) -> Reply:
    uri = f"{FED}/v2/invite/{quote(invite.room_id)}/{quote(invite.event_id)}"
    body = {
        "room_version": invite.room_version.identifier,
        "event": invite.pdu,
        "invite_room_state": invite_room_state,
    }
    return fake.request(server, "PUT", uri, body)


def test_invite_room_state_keeps_only_checked_entries_before_room_version_12(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    server = two_servers.second
    room = fake_room(fake, "10")
    owner = fake.user("owner")
    named = room.add(fake, EventTemplate("m.room.name", owner, {"name": "Fake"}, room.room_id, ""))
    forged = {**named.pdu, "origin_server_ts": named.pdu["origin_server_ts"] + 1}
    elsewhere = fake_room(fake, "10").state[("m.room.create", "")]
    invite = room.add(
        fake,
        EventTemplate(
            "m.room.member", owner, {"membership": "invite"}, room.room_id, users.bob.user_id
        ),
    )
    legacy_topic = {
        "type": "m.room.topic",
        "state_key": "",
        "sender": owner,
        "content": {"topic": "t"},
    }
    state = [
        room.state[("m.room.create", "")].pdu,  # a PDU of the room: kept
        {**legacy_topic, "origin_server_ts": 5, "junk": "x" * 100},  # stripped form: kept as such
        forged,  # signature broken
        elsewhere.pdu,  # another room's
        {**legacy_topic, "type": "m.room.avatar", "room_id": "!other:elsewhere"},
        {"type": "m.room.guest_access", "content": "not an object", "state_key": ""},
        "not an event",
    ]
    answer = ok(put_invite(fake, server, invite, state))
    assert server.server_name in answer["event"]["signatures"]
    shown = invite_state_shown(server, users.bob, room.room_id)
    kinds = [e["type"] for e in shown]
    assert kinds == ["m.room.create", "m.room.topic", "m.room.member"]
    assert shown[0]["sender"] == owner and shown[0]["content"]["room_version"] == "10"
    assert shown[1] == legacy_topic


def test_invite_room_state_from_room_version_12_must_be_the_rooms_signed_pdus(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    server = two_servers.first
    version = KNOWN_ROOM_VERSIONS["12"]
    owner = fake.user("owner")

    def room_v12(name: str) -> tuple[Event, Event]:
        create = fake.build(
            EventTemplate("m.room.create", owner, {"room_version": "12", "tag": name}, None, ""),
            version,
            [],
            {},
        )
        room_id = "!" + create.event_id[1:]
        state = {("m.room.create", ""): create}
        named = fake.build(
            EventTemplate("m.room.name", owner, {"name": name}, room_id, ""),
            version,
            [create],
            state,
        )
        return create, named

    create, named = room_v12("Twelve")
    room_id = "!" + create.event_id[1:]
    other_create, other_named = room_v12("Elsewhere")

    def invite_of(user: Session) -> Event:
        return fake.build(
            EventTemplate("m.room.member", owner, {"membership": "invite"}, room_id, user.user_id),
            version,
            [named],
            {("m.room.create", ""): create},
        )

    refusals = {
        "no create event": [named.pdu],
        "a forged entry": [create.pdu, {**named.pdu, "origin_server_ts": 1}],
        "another room's create": [other_create.pdu, named.pdu],
        "another room's name": [create.pdu, other_named.pdu],
        "an entry that is no event": [create.pdu, named.pdu, 7],
    }
    invitee = users.alice
    for reason, state in refusals.items():
        reply = put_invite(fake, server, invite_of(invitee), state)
        assert reply.status == 400 and reply.json()["errcode"] == "M_INVALID_PARAM", (
            reason,
            reply.body,
        )
    response = ok(server.authed(invitee, "GET", CLIENT + "/sync?timeout=0"))
    assert room_id not in response.get("rooms", {}).get("invite", {})

    ok(put_invite(fake, server, invite_of(invitee), [create.pdu, named.pdu]))
    shown = invite_state_shown(server, invitee, room_id)
    assert [e["type"] for e in shown] == ["m.room.create", "m.room.name", "m.room.member"]
    assert shown[1]["content"] == {"name": "Twelve"}


# -- outbound: an old server (v1 only), bad answers -----------------------------------------


@dataclass
class FakeRoom:
    """A room the fake hosts: its state, each event signed by the fake."""

    room_id: str
    version: RoomVersion
    state: dict[tuple[str, str], Event] = field(default_factory=dict)
    latest: list[Event] = field(default_factory=list)

    def add(self, fake: FakeServer, template: EventTemplate) -> Event:
        event = fake.build(template, self.version, self.latest, self.state)
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        self.latest = [event]
        return event


def fake_room(fake: FakeServer, version_id: str) -> FakeRoom:
    creator = fake.user("owner")
    room = FakeRoom(f"!{secrets.token_hex(6)}:{fake.server_name}", KNOWN_ROOM_VERSIONS[version_id])
    rid = room.room_id
    create = {"creator": creator, "room_version": version_id}
    room.add(fake, EventTemplate("m.room.create", creator, create, rid, ""))
    room.add(fake, EventTemplate("m.room.member", creator, {"membership": "join"}, rid, creator))
    power = {"users": {creator: 100}}
    room.add(fake, EventTemplate("m.room.power_levels", creator, power, rid, ""))
    room.add(fake, EventTemplate("m.room.join_rules", creator, {"join_rule": "public"}, rid, ""))
    return room


def serve_joins_over_v1_only(
    fake: FakeServer, room: FakeRoom, extra_state: list[dict[str, Any]]
) -> None:
    """make_join, and send_join on v1 only (v2 is unknown to the fake), answering with
    the room's state plus `extra_state`."""

    def make_join(request: ReceivedRequest) -> tuple[int, Any]:
        user_id = request.path.rpartition("/")[2]
        pdu = build_unsigned_pdu(
            EventTemplate("m.room.member", user_id, {"membership": "join"}, room.room_id, user_id),
            room_version=room.version,
            prev_events=[],
            current_state=room.state,
            server_name=fake.server_name,
        )
        pdu["prev_events"] = [e.event_id for e in room.latest]
        pdu["depth"] = max(e.depth for e in room.latest) + 1
        return 200, {"room_version": room.version.identifier, "event": pdu}

    def send_join_v1(request: ReceivedRequest) -> tuple[int, Any]:
        state = [e.pdu for e in room.state.values()]
        answer = {"origin": fake.server_name, "state": [*state, *extra_state], "auth_chain": state}
        return 200, [200, answer]

    fake.route("GET", f"{FED}/v1/make_join/{room.room_id}/", make_join)
    fake.route("PUT", f"{FED}/v1/send_join/{room.room_id}/", send_join_v1)


def test_a_join_through_a_server_with_only_v1_send_join_and_a_badly_signed_state_event(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    for server, user in ((two_servers.first, users.alice), (two_servers.second, users.bob)):
        room = fake_room(fake, "10")
        # a member whose profile fields are not strings (SyTest 30room-join.pl:1099)
        odd = fake.user("odd")
        odd_content = {"membership": "join", "displayname": [], "avatar_url": []}
        room.add(fake, EventTemplate("m.room.member", odd, odd_content, room.room_id, odd))
        # signed, then changed: its signature no longer holds, so it must be dropped
        test_event = fake.build(
            EventTemplate("test", fake.user("owner"), {"body": "Test"}, room.room_id, ""),
            room.version,
            room.latest,
            room.state,
        )
        tampered = {**test_event.pdu, "state_key": "something"}
        serve_joins_over_v1_only(fake, room, [tampered])
        reply = server.authed(
            user, "POST", f"{CLIENT}/join/{quote(room.room_id)}?server_name={fake.server_name}"
        )
        assert ok(reply)["room_id"] == room.room_id
        asked = [r.path for r in fake.received if room.room_id in r.path and "send_join" in r.path]
        assert [p.split("/")[3] for p in asked] == ["v2", "v1"]
        response = sync_until(server, user, in_section("join", room.room_id))
        joined = response["rooms"]["join"][room.room_id]
        events = [*joined["state"]["events"], *joined["timeline"]["events"]]
        assert any(e["type"] == "m.room.member" and e["state_key"] == user.user_id for e in events)
        assert not any(e["type"] == "test" for e in events)
        assert membership(server, user, room.room_id, odd) == "join"
        assert membership(server, user, room.room_id, user.user_id) == "join"


def countersigning(fake: FakeServer, *, wrap_v1: bool, bad_val: Any = None) -> Any:
    def answer(request: ReceivedRequest) -> tuple[int, Any]:
        body = request.body
        pdu = dict(body if wrap_v1 else body["event"])
        pdu.pop("unsigned", None)
        version = KNOWN_ROOM_VERSIONS["1" if wrap_v1 else body["room_version"]]
        if bad_val is not None:
            pdu["bad_val"] = bad_val
        signed = countersign_event(pdu, fake.server_name, fake.signing_key, version)
        return 200, ([200, {"event": signed}] if wrap_v1 else {"event": signed})

    return answer


def test_an_invite_to_a_server_with_only_the_v1_invite_api(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    a, b = two_servers
    # a room version v1 can carry: invited through v1 after v2 is not found
    room_id = create_room(b, users.bob, room_version="2", name="Old style")
    guest = fake.user(f"g{secrets.token_hex(3)}")
    fake.route("PUT", f"{FED}/v1/invite/{room_id}/", countersigning(fake, wrap_v1=True))
    invite_path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
    ok(b.authed(users.bob, "POST", invite_path, {"user_id": guest}))
    assert membership(b, users.bob, room_id, guest) == "invite"
    asked = [r for r in fake.received if f"/invite/{room_id}/" in r.path]
    assert [r.path.split("/")[3] for r in asked] == ["v2", "v1"]
    names = {
        e.get("content", {}).get("name") for e in asked[1].body["unsigned"]["invite_room_state"]
    }
    assert "Old style" in names

    # the invitee declines through make_leave and send_leave: a forged leave is refused
    version, pdu = template(fake, b, "leave", room_id, guest)
    for bad in unsigned_and_forged(fake, pdu, version):
        refused(send(fake, b, "v1/send_leave", bad, event_id_of(bad, version)), 403, "M_FORBIDDEN")
    assert membership(b, users.bob, room_id, guest) == "invite"
    leave = fake.sign(pdu, version)
    assert ok(send(fake, b, "v1/send_leave", leave.pdu, leave.event_id)) == [200, {}]
    assert membership(b, users.bob, room_id, guest) == "leave"

    # a room version v1 cannot carry: nothing to fall back on
    newer = create_room(a, users.alice, room_version="10")
    other = fake.user(f"g{secrets.token_hex(3)}")
    path = f"{CLIENT}/rooms/{quote(newer)}/invite"
    refused(
        a.authed(users.alice, "POST", path, {"user_id": other}), 400, "M_UNSUPPORTED_ROOM_VERSION"
    )
    assert membership(a, users.alice, newer, other) is None
    assert not any(r.path.startswith(f"{FED}/v1/invite/{newer}") for r in fake.received)


def test_a_remote_invite_does_not_hold_up_the_rooms_other_sends(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    b = two_servers.second
    room_id = create_room(b, users.bob, preset="public_chat", room_version="10")
    released = threading.Event()
    countersign = countersigning(fake, wrap_v1=False)

    def slow(request: ReceivedRequest) -> tuple[int, Any]:
        released.wait(20)
        return countersign(request)  # type: ignore[no-any-return]

    fake.route("PUT", f"{FED}/v2/invite/{room_id}/", slow)
    guest = fake.user(f"slow{secrets.token_hex(3)}")
    replies: list[Reply] = []
    invite_path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
    inviting = threading.Thread(
        target=lambda: replies.append(b.authed(users.bob, "POST", invite_path, {"user_id": guest}))
    )
    inviting.start()
    try:
        deadline = time.monotonic() + 10
        while not any(f"/v2/invite/{room_id}/" in r.path for r in fake.received):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the invitee's server has not answered: the room's other sends go on
        message = {"msgtype": "m.text", "body": "meanwhile"}
        send_path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/m1"
        ok(b.authed(users.bob, "PUT", send_path, message))
        topic_path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic/"
        ok(b.authed(users.bob, "PUT", topic_path, {"topic": "while inviting"}))
        assert inviting.is_alive()
    finally:
        released.set()
        inviting.join(30)
    (reply,) = replies
    assert reply.status == 200, reply.body
    # the invite, built before them, forks the room; both branches are in its state
    assert membership(b, users.bob, room_id, guest) == "invite"
    assert ok(b.authed(users.bob, "GET", topic_path))["topic"] == "while inviting"
    after = {"msgtype": "m.text", "body": "after"}
    ok(b.authed(users.bob, "PUT", f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/m2", after))
    messages = ok(b.authed(users.bob, "GET", f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b"))
    bodies = [e["content"].get("body") for e in messages["chunk"] if e["type"] == "m.room.message"]
    assert bodies[:2] == ["after", "meanwhile"]
    assert membership(b, users.bob, room_id, guest) == "invite"


def test_an_invite_answered_with_json_room_version_6_does_not_allow_fails_cleanly(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    a = two_servers.first
    room_id = create_room(a, users.alice, room_version="6")
    fake.route(
        "PUT", f"{FED}/v2/invite/{room_id}/", countersigning(fake, wrap_v1=False, bad_val=1.1)
    )
    guest = fake.user("floaty")
    path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
    refused(a.authed(users.alice, "POST", path, {"user_id": guest}), 400, "M_BAD_JSON")
    assert membership(a, users.alice, room_id, guest) is None
    # the room goes on
    ok(
        a.authed(
            users.alice,
            "PUT",
            f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic/",
            {"topic": "still here"},
        )
    )


# -- server ACLs ------------------------------------------------------------------------------


def make(fake: FakeServer, server: FederatingServer, kind: str, room_id: str, user: str) -> Reply:
    uri = f"{FED}/v1/make_{kind}/{quote(room_id)}/{quote(user)}?ver=10"
    return fake.request(server, "GET", uri)


def test_a_server_the_rooms_acl_denies_cannot_take_part_in_any_handshake(
    two_servers: ServerPair, users: Users, fake: FakeServer
) -> None:
    """As before the ban each handshake works; after it every one is 403 M_FORBIDDEN and
    changes nothing (ACLs match host names: `localhost` is every test server)."""
    a, b = two_servers
    for server, owner in ((a, users.alice), (b, users.bob)):
        public = create_room(server, owner, preset="public_chat", room_version="10")
        knock_rule = [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]
        knockable = create_room(server, owner, room_version="10", initial_state=knock_rule)
        member, joiner, knocker = (fake.user(f"{n}{secrets.token_hex(3)}") for n in "mjk")
        invitee = register(server, f"invitee{secrets.token_hex(3)}").user_id

        # before the ban: a member of the fake joins, and every step can be started
        join_fake_user(fake, server, public, member)
        version, join_pdu = template(fake, server, "join", public, joiner)
        join = fake.sign(join_pdu, version)
        leave = fake.sign(template(fake, server, "leave", public, member)[1], version)
        knock = fake.sign(template(fake, server, "knock", knockable, knocker)[1], version)
        invite = fake.build(
            EventTemplate("m.room.member", member, {"membership": "invite"}, public, invitee),
            version,
            [join],
            {},
        )
        invite_uri = f"{FED}/v2/invite/{quote(public)}/{quote(invite.event_id)}"
        invite_body = {"room_version": "10", "event": invite.pdu, "invite_room_state": []}
        ok(fake.request(server, "PUT", invite_uri, invite_body))

        acl = {"allow": ["*"], "deny": ["localhost"]}
        for room_id in (public, knockable):
            path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.server_acl/"
            ok(server.authed(owner, "PUT", path, acl))

        attempts = {
            "make_join": make(fake, server, "join", public, joiner),
            "send_join v1": send(fake, server, "v1/send_join", join.pdu, join.event_id),
            "send_join v2": send(fake, server, "v2/send_join", join.pdu, join.event_id),
            "make_leave": make(fake, server, "leave", public, member),
            "send_leave v1": send(fake, server, "v1/send_leave", leave.pdu, leave.event_id),
            "send_leave v2": send(fake, server, "v2/send_leave", leave.pdu, leave.event_id),
            "make_knock": make(fake, server, "knock", knockable, knocker),
            "send_knock": send(fake, server, "v1/send_knock", knock.pdu, knock.event_id),
            "invite": fake.request(server, "PUT", invite_uri, invite_body),
        }
        for name, reply in attempts.items():
            assert reply.status == 403, (name, reply.body)
            assert reply.json()["errcode"] == "M_FORBIDDEN", (name, reply.body)
        assert membership(server, owner, public, member) == "join"
        assert membership(server, owner, public, joiner) is None
        assert membership(server, owner, knockable, knocker) is None


@pytest.mark.parametrize(
    ("status", "body", "unknown"),
    [
        (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, True),
        (405, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized method"}, True),
        (404, None, True),  # no Matrix error at all: an old server's plain 404
        (400, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, True),  # old Synapse
        (404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}, False),  # a real answer
        (400, {"errcode": "M_BAD_JSON", "error": "bad"}, False),
        (403, {"errcode": "M_FORBIDDEN", "error": "no"}, False),
        (500, None, False),
    ],
)
def test_which_refusals_mean_the_endpoint_is_unknown(
    status: int, body: dict[str, Any] | None, unknown: bool
) -> None:
    errcode = body.get("errcode") if body else None
    assert is_unknown_endpoint(RemoteRequestFailed("there", status, errcode, body)) is unknown
