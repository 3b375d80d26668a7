"""Events from another server entering Ranvier's rooms, on both engines: a fake remote
server (fake_server.py) joins a local room through make_join and send_join, then pushes
transactions: good events reach the local user, forged or unauthorised ones do not,
soft-failed ones are kept but never served, missing prev events are fetched, retried
transactions are answered again without being processed, and the server ACL holds."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.signing_keys import ServerSigningKey
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.integration.matrix import CLIENT, Session

FED = "/_matrix/federation"
ENGINES = ["sqlite", "postgres"]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


@dataclass
class Room:
    server: FederatingServer
    alice: Session
    room_id: str
    version: RoomVersion
    # the room's state as the fake knows it: (type, state_key) -> event
    state: dict[tuple[str, str], Event] = field(default_factory=dict)
    # the fake's newest event, the prev event of the next it sends
    latest: Event | None = None


_rooms: dict[str, Room] = {}
# room ID -> the events the fake left out of a gap, which its /backfill hands out later
_gap_events: dict[str, list[Event]] = {}


def pick(pair: ServerPair, engine: str) -> FederatingServer:
    return pair.first if engine == "sqlite" else pair.second


def join(fake: FakeServer, room: Room, user_id: str) -> Event:
    server = room.server
    versions = "&".join(f"ver={v}" for v in ("1", "5", "6", "10", "12"))
    reply = fake.request(
        server, "GET", f"{FED}/v1/make_join/{room.room_id}/{quote(user_id)}?{versions}"
    )
    assert reply.status == 200, reply.body
    template = reply.json()["event"]
    if "event_id" in template:
        # rooms v1 and v2: the joining server names its event
        template["event_id"] = f"${secrets.token_hex(8)}:{fake.server_name}"
    event = fake.sign(template, room.version)
    reply = fake.request(
        server, "PUT", f"{FED}/v2/send_join/{room.room_id}/{event.event_id}", event.pdu
    )
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert answer["members_omitted"] is False
    assert fake.server_name in answer["servers_in_room"]
    assert server.server_name in answer["servers_in_room"]
    for pdu in answer["state"]:
        state_event = Event(pdu, room.version, _event_id(pdu, room.version))
        room.state[(state_event.type, state_event.state_key or "")] = state_event
    assert ("m.room.create", "") in room.state
    chain_ids = {_event_id(pdu, room.version) for pdu in answer["auth_chain"]}
    state_ids = {e.event_id for e in room.state.values()}
    for state_event in room.state.values():
        assert set(state_event.auth_event_ids) <= chain_ids
    assert set(event.auth_event_ids) <= state_ids | chain_ids
    room.state[("m.room.member", user_id)] = event
    room.latest = event
    return event


def _event_id(pdu: dict[str, Any], version: RoomVersion) -> str:
    from ranvier.protocol.event_ids import compute_event_id

    return compute_event_id(pdu, version)


@pytest.fixture
def room(request: pytest.FixtureRequest, two_servers: ServerPair, fake: FakeServer) -> Room:
    engine = request.param
    if engine not in _rooms:
        server = pick(two_servers, engine)
        alice = register(server, f"alice{secrets.token_hex(3)}")
        reply = server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"})
        assert reply.status == 200, reply.body
        room_id = reply.json()["room_id"]
        version = KNOWN_ROOM_VERSIONS[
            server.authed(alice, "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.create").json()[
                "room_version"
            ]
        ]
        new = Room(server, alice, room_id, version)
        join(fake, new, fake.user("mallory"))
        _rooms[engine] = new
    return _rooms[engine]


engines = pytest.mark.parametrize("room", ENGINES, indirect=True)


def message(fake: FakeServer, room: Room, body: str, sender: str | None = None, **kw: Any) -> Event:
    sender = sender or fake.user("mallory")
    assert room.latest is not None
    prev = kw.pop("prev", [room.latest])
    event = fake.build(
        EventTemplate("m.room.message", sender, {"msgtype": "m.text", "body": body}, room.room_id),
        room.version,
        prev,
        room.state,
        **kw,
    )
    return event


def timeline_bodies(room: Room) -> list[str]:
    reply = room.server.authed(
        room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/messages?dir=b&limit=50"
    )
    assert reply.status == 200, reply.body
    return [
        e["content"].get("body") for e in reply.json()["chunk"] if e["type"] == "m.room.message"
    ]


def sync_bodies(room: Room) -> list[str]:
    reply = room.server.authed(room.alice, "GET", CLIENT + "/sync?timeout=0")
    assert reply.status == 200, reply.body
    timeline = reply.json()["rooms"]["join"][room.room_id]["timeline"]["events"]
    return [e["content"].get("body") for e in timeline if e["type"] == "m.room.message"]


def send(fake: FakeServer, room: Room, *events: Event, txn: str | None = None) -> dict[str, Any]:
    reply = fake.send_transaction(room.server, txn or secrets.token_hex(8), [e.pdu for e in events])
    assert reply.status == 200, reply.body
    results: dict[str, Any] = reply.json()["pdus"]
    return results


@engines
def test_the_remote_user_is_joined_after_send_join(fake: FakeServer, room: Room) -> None:
    reply = room.server.authed(room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/joined_members")
    assert fake.user("mallory") in reply.json()["joined"]


@engines
def test_send_join_refuses_what_is_not_the_origins_join(fake: FakeServer, room: Room) -> None:
    user = fake.user(f"zed{secrets.token_hex(2)}")
    reply = fake.request(
        room.server, "GET", f"{FED}/v1/make_join/{room.room_id}/{quote(user)}?ver=10&ver=12"
    )
    template = reply.json()["event"]
    event = fake.sign(template, room.version)
    path = f"{FED}/v2/send_join/{room.room_id}"
    # the URL names another event
    reply = fake.request(room.server, "PUT", f"{path}/{quote('$other')}", event.pdu)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    # a join of a user of another server, though signed by us
    other = {**template, "sender": "@x:elsewhere.example", "state_key": "@x:elsewhere.example"}
    forged = fake.sign(other, room.version)
    reply = fake.request(room.server, "PUT", f"{path}/{quote(forged.event_id)}", forged.pdu)
    assert reply.status == 403, reply.body
    # not a join
    leave = fake.sign({**template, "content": {"membership": "leave"}}, room.version)
    reply = fake.request(room.server, "PUT", f"{path}/{quote(leave.event_id)}", leave.pdu)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = room.server.authed(room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/joined_members")
    assert user not in reply.json()["joined"]
    # v1 answers [200, {...}] with the state
    reply = fake.request(
        room.server, "PUT", f"{FED}/v1/send_join/{room.room_id}/{quote(event.event_id)}", event.pdu
    )
    assert reply.status == 200, reply.body
    status, body = reply.json()
    assert status == 200 and body["state"] and body["auth_chain"]


@engines
def test_a_good_message_reaches_the_local_user(fake: FakeServer, room: Room) -> None:
    event = message(fake, room, "hello from afar")
    assert send(fake, room, event) == {event.event_id: {}}
    room.latest = event
    assert "hello from afar" in timeline_bodies(room)
    assert "hello from afar" in sync_bodies(room)
    # the local user answers: the reply builds on the remote message
    reply = room.server.authed(
        room.alice,
        "PUT",
        f"{CLIENT}/rooms/{room.room_id}/send/m.room.message/t{secrets.token_hex(4)}",
        {"msgtype": "m.text", "body": "hello back"},
    )
    assert reply.status == 200, reply.body


@engines
def test_a_forged_signature_is_refused(fake: FakeServer, room: Room) -> None:
    real_key = fake.signing_key
    fake.signing_key = ServerSigningKey.generate(real_key.key_id.partition(":")[2])
    try:
        forged = message(fake, room, "forged")
    finally:
        fake.signing_key = real_key
    results = send(fake, room, forged)
    assert "error" in results[forged.event_id]
    assert "forged" not in timeline_bodies(room)
    reply = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(forged.event_id)}")
    assert reply.status == 404


@engines
def test_an_event_by_a_user_not_in_the_room_is_rejected(fake: FakeServer, room: Room) -> None:
    event = message(fake, room, "gatecrash", sender=fake.user("eve"))
    # processed, so no error in the answer (as Synapse); stored as rejected, never shown
    assert send(fake, room, event) == {event.event_id: {}}
    assert "gatecrash" not in timeline_bodies(room)


@engines
def test_a_retried_transaction_gets_the_same_answer(fake: FakeServer, room: Room) -> None:
    first = message(fake, room, "once")
    txn = secrets.token_hex(8)
    assert send(fake, room, first, txn=txn) == {first.event_id: {}}
    room.latest = first
    other = message(fake, room, "never processed")
    # the same transaction ID again, even with other content: the first answer, and
    # nothing of the new body is processed
    assert send(fake, room, other, txn=txn) == {first.event_id: {}}
    bodies = timeline_bodies(room)
    assert bodies.count("once") == 1
    assert "never processed" not in bodies


@engines
def test_missing_prev_events_are_fetched(fake: FakeServer, room: Room) -> None:
    gap = message(fake, room, "in the gap")
    after = message(fake, room, "after the gap", prev=[gap])
    asked: list[ReceivedRequest] = []

    def missing(request: ReceivedRequest) -> tuple[int, Any]:
        asked.append(request)
        return 200, {"events": [gap.pdu]}

    fake.route("POST", f"{FED}/v1/get_missing_events/", missing)
    assert send(fake, room, after) == {after.event_id: {}}
    room.latest = after
    assert asked and asked[-1].body["latest_events"] == [after.event_id]
    bodies = timeline_bodies(room)
    assert bodies.index("after the gap") < bodies.index("in the gap")  # newest first


@engines
def test_the_state_at_a_gap_is_asked_for(fake: FakeServer, room: Room) -> None:
    """get_missing_events gives less than the whole gap: the oldest event it gave has a
    prev event still missing, whose state is asked for with /state_ids."""
    first = message(fake, room, "unseen one")
    second = message(fake, room, "seen two", prev=[first])
    after = message(fake, room, "after the unseen", prev=[second])
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [second.pdu]}))
    asked: list[ReceivedRequest] = []

    def state_ids(request: ReceivedRequest) -> tuple[int, Any]:
        asked.append(request)
        # the state before `first` is the state the fake knows (messages change none)
        return 200, {
            "pdu_ids": [e.event_id for e in room.state.values()],
            "auth_chain_ids": [],
        }

    fake.route("GET", f"{FED}/v1/state_ids/", state_ids)
    assert send(fake, room, after) == {after.event_id: {}}
    room.latest = after
    _gap_events[room.room_id] = [first]
    assert [r.query.get("event_id") for r in asked] == [first.event_id]
    bodies = timeline_bodies(room)
    assert bodies.index("after the unseen") < bodies.index("seen two")
    # the event at the gap is an outlier here: known, but in no timeline
    assert "unseen one" not in bodies


@engines
def test_an_event_from_before_a_kick_is_soft_failed(fake: FakeServer, room: Room) -> None:
    trudy = fake.user(f"trudy{secrets.token_hex(2)}")
    trudy_join = join(fake, room, trudy)
    reply = room.server.authed(
        room.alice,
        "POST",
        f"{CLIENT}/rooms/{room.room_id}/kick",
        {"user_id": trudy, "reason": "bye"},
    )
    assert reply.status == 200, reply.body
    # trudy's server has not heard of the kick: it builds on the join
    late = message(fake, room, "sent after the kick", sender=trudy, prev=[trudy_join])
    assert send(fake, room, late) == {late.event_id: {}}
    assert "sent after the kick" not in timeline_bodies(room)
    assert "sent after the kick" not in sync_bodies(room)
    context = f"{CLIENT}/rooms/{room.room_id}/context/{quote(late.event_id)}"
    assert room.server.authed(room.alice, "GET", context).status == 404
    search = {"search_categories": {"room_events": {"search_term": "kick"}}}
    reply = room.server.authed(room.alice, "POST", CLIENT + "/search", search)
    assert reply.status == 200, reply.body
    found = reply.json()["search_categories"]["room_events"]["results"]
    assert all(r["result"]["event_id"] != late.event_id for r in found)
    # kept: the room's DAG holds it
    reply = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(late.event_id)}")
    assert reply.status == 200, reply.body
    # and the next local event does not build on it
    reply = room.server.authed(
        room.alice,
        "PUT",
        f"{CLIENT}/rooms/{room.room_id}/send/m.room.message/t{secrets.token_hex(4)}",
        {"msgtype": "m.text", "body": "after soft failure"},
    )
    event_id = reply.json()["event_id"]
    reply = room.server.authed(room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/event/{event_id}")
    assert reply.status == 200


@engines
def test_transactions_are_held_to_the_spec(fake: FakeServer, room: Room) -> None:
    path = f"{FED}/v1/send/{secrets.token_hex(8)}"
    body: dict[str, Any] = {"origin": fake.server_name, "origin_server_ts": 1, "pdus": []}
    too_many = {**body, "pdus": [{}] * 51}
    reply = fake.request(room.server, "PUT", path, too_many)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = fake.request(room.server, "PUT", path, {**body, "edus": [{}] * 101})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = fake.request(room.server, "PUT", path, {**body, "origin": "localhost:1"})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = fake.request(room.server, "PUT", path, {"origin": fake.server_name})
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
    # EDUs are taken (and not acted on yet); a PDU of an unknown room gets an error
    edu = {"edu_type": "m.typing", "content": {"room_id": room.room_id, "typing": True}}
    stray = {**message(fake, room, "stray").pdu, "room_id": f"!nowhere:{fake.server_name}"}
    reply = fake.request(room.server, "PUT", path, {**body, "pdus": [stray], "edus": [edu]})
    assert reply.status == 200, reply.body
    answer = reply.json()["pdus"]
    assert list(answer) == [_event_id(stray, room.version)]
    assert "Unknown room" in answer[_event_id(stray, room.version)]["error"]


@engines
def test_paginating_back_over_a_gap_backfills_without_the_forged(
    fake: FakeServer, room: Room
) -> None:
    """Older history the fake left out is pulled with /backfill when /messages runs out;
    a forged event in the answer is dropped, the rest served in place, and once nothing
    is missing the fake is not asked again."""
    old_one = message(fake, room, "old one")
    old_two = message(fake, room, "old two", prev=[old_one])
    after = message(fake, room, "after the old", prev=[old_two])
    real_key = fake.signing_key
    fake.signing_key = ServerSigningKey.generate(real_key.key_id.partition(":")[2])
    try:
        forged = message(fake, room, "forged old", prev=[old_one])
    finally:
        fake.signing_key = real_key
    # the gap's newest event is given, the older ones are left for /backfill
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [old_two.pdu]}))
    fake.route(
        "GET",
        f"{FED}/v1/state_ids/",
        lambda _r: (
            200,
            {"pdu_ids": [e.event_id for e in room.state.values()], "auth_chain_ids": []},
        ),
    )
    assert send(fake, room, after) == {after.event_id: {}}
    room.latest = after
    backfills: list[ReceivedRequest] = []
    answers: dict[str, list[Event]] = {}
    answers[room.room_id] = [*_gap_events.get(room.room_id, []), old_one, old_two, forged]

    def backfill(request: ReceivedRequest) -> tuple[int, Any]:
        backfills.append(request)
        room_id = request.path.rpartition("/")[2]
        pdus = [e.pdu for e in answers.get(room_id, [])]
        return 200, {"origin": fake.server_name, "origin_server_ts": 0, "pdus": pdus}

    fake.route("GET", f"{FED}/v1/backfill/", backfill)
    bodies = timeline_bodies(room)
    assert backfills, "the fake was not asked"
    assert bodies.index("after the old") < bodies.index("old two") < bodies.index("old one")
    assert "forged old" not in bodies
    if room.room_id in _gap_events:
        assert bodies.index("seen two") < bodies.index("unseen one")
    reply = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(forged.event_id)}")
    assert reply.status == 404
    # the history pulled is old: no /sync shows it as new
    assert "old one" not in sync_bodies(room)
    asked = len(backfills)
    assert timeline_bodies(room) == bodies
    assert len(backfills) == asked


@engines
def test_the_server_acl_refuses_a_denied_server(fake: FakeServer, room: Room) -> None:
    reply = room.server.authed(
        room.alice,
        "PUT",
        f"{CLIENT}/rooms/{room.room_id}/state/m.room.server_acl/",
        {"allow": ["*"], "deny": [fake.server_name.partition(":")[0]], "allow_ip_literals": True},
    )
    assert reply.status == 200, reply.body
    event = message(fake, room, "denied")
    results = send(fake, room, event)
    assert "ACL" in results[event.event_id]["error"]
    assert "denied" not in timeline_bodies(room)
    # nor may it join another user through send_join
    joiner = fake.user(f"late{secrets.token_hex(2)}")
    assert room.latest is not None
    join_event = fake.build(
        EventTemplate("m.room.member", joiner, {"membership": "join"}, room.room_id, joiner),
        room.version,
        [room.latest],
        room.state,
    )
    path = f"{FED}/v2/send_join/{room.room_id}/{quote(join_event.event_id)}"
    reply = fake.request(room.server, "PUT", path, join_event.pdu)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
