"""What another server observes of Ranvier's checks on the PDUs it pushes, on both engines
(the SyTest cases of 50federation, written for Ranvier): the state at rejected events and
outliers is not served, rejected events change no state and are answered as processed when sent
again, a pushed event whose prev events its server will not give is dropped, a denied
server reaches none of the room's history endpoints, malformed PDUs of a version 6 room are
dropped beside good ones, and redactions that must not apply do not. Each test has a
fresh room on the engine's server, which the fake server (fake_server.py) joins."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.event_builder import (
    EventTemplate,
    PrevEvent,
    build_create_event,
    build_event,
    build_unsigned_pdu,
)
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederationCA, register
from tests.federation.replies import ok, refused
from tests.federation.test_inbound_events import (
    ENGINES,
    Room,
    join,
    message,
    pick,
    send,
    timeline_bodies,
)
from tests.integration.matrix import CLIENT

FED = "/_matrix/federation"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def new_room(
    pair: ServerPair, engine: str, fake: FakeServer, version: str = "10", joiner: str = "mallory"
) -> Room:
    """A public room of a new local user, joined by the fake's `joiner`."""
    server = pick(pair, engine)
    alice = register(server, f"alice{secrets.token_hex(3)}")
    body = {"preset": "public_chat", "room_version": version}
    room_id = ok(server.authed(alice, "POST", CLIENT + "/createRoom", body))["room_id"]
    room = Room(server, alice, room_id, KNOWN_ROOM_VERSIONS[version])
    join(fake, room, fake.user(joiner))
    return room


engines = pytest.mark.parametrize("engine", ENGINES)


def state_ids_at(fake: FakeServer, room: Room, event_id: str, endpoint: str = "state_ids") -> Any:
    path = f"{FED}/v1/{endpoint}/{quote(room.room_id)}?event_id={quote(event_id)}"
    return fake.request(room.server, "GET", path)


def served_pdu(fake: FakeServer, room: Room, event_id: str) -> dict[str, Any]:
    reply = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(event_id)}")
    pdus: list[dict[str, Any]] = ok(reply)["pdus"]
    return pdus[0]


def client_event(room: Room, event_id: str) -> Any:
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/event/{quote(event_id)}"
    return room.server.authed(room.alice, "GET", path)


# -- rejected events and outliers (36state.pl) -------------------------------------------


@engines
@pytest.mark.parametrize("kind", ["message", "state"])
def test_a_rejected_event_has_no_state_changes_none_and_is_hidden_when_sent_again(
    two_servers: ServerPair, fake: FakeServer, engine: str, kind: str
) -> None:
    room = new_room(two_servers, engine, fake)
    initial = sorted(e.event_id for e in room.state.values())
    assert room.latest is not None
    intruder = fake.user("eve")  # never joined
    template = (
        EventTemplate("m.room.topic", intruder, {"topic": "Rejected"}, room.room_id, "")
        if kind == "state"
        else EventTemplate("m.room.message", intruder, {"body": "Rejected"}, room.room_id)
    )
    rejected = fake.build(template, room.version, [room.latest], room.state)
    # processed (stored as rejected): answered {} as Synapse does, and sent again the same
    assert send(fake, room, rejected) == {rejected.event_id: {}}
    assert send(fake, room, rejected) == {rejected.event_id: {}}
    refused(client_event(room, rejected.event_id), 404, "M_NOT_FOUND")
    for endpoint in ("state", "state_ids"):
        refused(state_ids_at(fake, room, rejected.event_id, endpoint), 404, "M_NOT_FOUND")
    # a good event on top of it: the state before it is the state before the rejected one
    regular = message(fake, room, "Hello", prev=[rejected])
    assert send(fake, room, regular) == {regular.event_id: {}}
    assert sorted(ok(state_ids_at(fake, room, regular.event_id))["pdu_ids"]) == initial
    assert "Hello" in timeline_bodies(room)
    topic = room.server.authed(
        room.alice, "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/state/m.room.topic"
    )
    refused(topic, 404, "M_NOT_FOUND")


@engines
def test_the_state_at_an_outlier_is_not_found(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    """C is pushed; get_missing_events gives B, whose prev A stays missing: the state at A
    is asked for, and A is kept as an outlier, served by ID but with no state here."""
    room = new_room(two_servers, engine, fake)
    a = message(fake, room, "outlier A")
    b = message(fake, room, "pulled B", prev=[a])
    c = message(fake, room, "pushed C", prev=[b])
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [b.pdu]}))
    asked: list[str | None] = []

    def state_ids(request: ReceivedRequest) -> tuple[int, Any]:
        asked.append(request.query.get("event_id"))
        return 200, {"pdu_ids": [e.event_id for e in room.state.values()], "auth_chain_ids": []}

    fake.route("GET", f"{FED}/v1/state_ids/", state_ids)
    assert send(fake, room, c) == {c.event_id: {}}
    assert asked == [a.event_id]
    bodies = timeline_bodies(room)
    assert "pushed C" in bodies and "pulled B" in bodies and "outlier A" not in bodies
    assert served_pdu(fake, room, a.event_id)["content"]["body"] == "outlier A"
    for endpoint in ("state", "state_ids"):
        refused(state_ids_at(fake, room, a.event_id, endpoint), 404, "M_NOT_FOUND")
    ok(state_ids_at(fake, room, b.event_id))


@engines
def test_a_gap_no_server_fills_is_not_asked_about_on_every_page(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake)
    a = message(fake, room, "lost A")
    b = message(fake, room, "after the loss", prev=[a])
    c = message(fake, room, "pushed last", prev=[b])
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [b.pdu]}))
    fake.route(
        "GET",
        f"{FED}/v1/state_ids/",
        lambda _r: (
            200,
            {"pdu_ids": [e.event_id for e in room.state.values()], "auth_chain_ids": []},
        ),
    )
    assert send(fake, room, c) == {c.event_id: {}}
    backfills: list[ReceivedRequest] = []

    def backfill(request: ReceivedRequest) -> tuple[int, Any]:
        backfills.append(request)
        return 200, {"origin": fake.server_name, "origin_server_ts": 0, "pdus": []}

    fake.route("GET", f"{FED}/v1/backfill/", backfill)
    bodies = timeline_bodies(room)
    assert "after the loss" in bodies and "lost A" not in bodies
    assert len(backfills) == 1
    assert backfills[0].query.get("v") == b.event_id
    assert timeline_bodies(room) == bodies
    assert len(backfills) == 1


@engines
def test_an_outlier_whose_auth_events_are_in_another_room_is_rejected(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    """(33room-get-missing-events.pl) Q, mallory's join of the second room citing her
    membership of the first as an auth event, comes in as the state at a gap; R, her
    message after it, is pulled; S, bob's, is pushed. Q and R are rejected, S accepted."""
    first = new_room(two_servers, engine, fake)
    second = new_room(two_servers, engine, fake, joiner="bob")
    mallory = fake.user("mallory")
    auth_state = {
        **second.state,
        ("m.room.member", mallory): first.state[("m.room.member", mallory)],
    }
    assert second.latest is not None
    q = fake.build(
        EventTemplate("m.room.member", mallory, {"membership": "join"}, second.room_id, mallory),
        second.version,
        [second.latest],
        auth_state,
    )
    assert first.state[("m.room.member", mallory)].event_id in q.auth_event_ids
    r = message(fake, second, "event R", sender=mallory, prev=[q])
    s = message(fake, second, "event S", sender=fake.user("bob"), prev=[r])
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [r.pdu]}))
    fake.route(
        "GET",
        f"{FED}/v1/state_ids/",
        lambda _r: (
            200,
            {
                "pdu_ids": [e.event_id for e in second.state.values()],
                "auth_chain_ids": [e.event_id for e in first.state.values()],
            },
        ),
    )
    assert send(fake, second, s) == {s.event_id: {}}
    bodies = timeline_bodies(second)
    assert "event S" in bodies and "event R" not in bodies
    path = f"{CLIENT}/rooms/{quote(second.room_id)}/joined_members"
    assert mallory not in ok(second.server.authed(second.alice, "GET", path))["joined"]
    state = ok(state_ids_at(fake, second, s.event_id))["pdu_ids"]
    assert q.event_id not in state
    assert not set(state) & {e.event_id for e in first.state.values()}


# -- prev events that cannot be had (36state.pl:126) ---------------------------------------


@engines
def test_a_pushed_event_whose_prev_events_cannot_be_had_is_dropped(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake)
    missing = message(fake, room, "never given")
    del fake.events[missing.event_id]
    sent = message(fake, room, "cites the unknown", prev=[missing])
    gme: list[ReceivedRequest] = []
    state_asked: list[ReceivedRequest] = []

    def get_missing_events(request: ReceivedRequest) -> tuple[int, Any]:
        gme.append(request)
        return 200, {"events": []}

    def state_ids(request: ReceivedRequest) -> tuple[int, Any]:
        state_asked.append(request)
        return 200, {"pdu_ids": [e.event_id for e in room.state.values()], "auth_chain_ids": []}

    fake.route("POST", f"{FED}/v1/get_missing_events/", get_missing_events)
    fake.route("GET", f"{FED}/v1/state_ids/", state_ids)
    assert "error" in send(fake, room, sent)[sent.event_id]
    assert [r.body["latest_events"] for r in gme] == [[sent.event_id]]
    assert not state_asked  # its state was not taken on the sender's word
    reply = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(sent.event_id)}")
    refused(reply, 404, "M_NOT_FOUND")
    assert "cites the unknown" not in timeline_bodies(room)
    # an event citing the dropped one: it is missing again, so it is asked for again
    later = message(fake, room, "cites the dropped", prev=[sent])
    assert "error" in send(fake, room, later)[later.event_id]
    assert gme[-1].body["latest_events"] == [later.event_id]
    assert not state_asked


# -- server ACLs on every endpoint (50server-acl-endpoints.pl) ------------------------------


@engines
def test_a_denied_server_reaches_none_of_the_rooms_history(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake)
    assert room.latest is not None
    event_id = quote(room.latest.event_id)
    room_id = quote(room.room_id)
    acl = {"allow": ["*"], "deny": [fake.server_name.partition(":")[0]], "allow_ip_literals": True}
    path = f"{CLIENT}/rooms/{room_id}/state/m.room.server_acl/"
    ok(room.server.authed(room.alice, "PUT", path, acl))
    gme = {"earliest_events": [], "latest_events": [room.latest.event_id], "limit": 10}
    for method, endpoint, body in (
        ("GET", f"/v1/event/{event_id}", None),
        ("GET", f"/v1/state/{room_id}?event_id={event_id}", None),
        ("GET", f"/v1/state_ids/{room_id}?event_id={event_id}", None),
        ("GET", f"/v1/backfill/{room_id}?v={event_id}&limit=10", None),
        ("GET", f"/v1/event_auth/{room_id}/{event_id}", None),
        ("POST", f"/v1/get_missing_events/{room_id}", gme),
        # the ACL comes before the body is read (SyTest sends none)
        ("POST", f"/v1/get_missing_events/{room_id}", {}),
    ):
        refused(fake.request(room.server, method, FED + endpoint, body), 403, "M_FORBIDDEN")
    denied = message(fake, room, "denied")
    assert "ACL" in send(fake, room, denied)[denied.event_id]["error"]
    assert "denied" not in timeline_bodies(room)


# -- malformed PDUs (51transactions.pl) --------------------------------------------------


@engines
def test_a_malformed_pdu_in_a_version_6_room_is_dropped_beside_a_good_one(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake, version="6")
    good = message(fake, room, "Good event")
    bad = message(fake, room, "Bad event", prev=[good])
    # a float: not canonical JSON, which version 6 rooms hold to
    bad_pdu = {**bad.pdu, "content": {**bad.pdu["content"], "bad_val": 1.1}}
    reply = fake.send_transaction(room.server, secrets.token_hex(8), [good.pdu, bad_pdu])
    answer = ok(reply)["pdus"]
    assert answer[good.event_id] == {}
    assert all("error" in result for eid, result in answer.items() if eid != good.event_id)
    ok(client_event(room, good.event_id))
    refused(client_event(room, bad.event_id), 404, "M_NOT_FOUND")
    assert "Bad event" not in timeline_bodies(room)


# -- redactions that must not apply (39redactions.pl) ------------------------------------


def redaction(fake: FakeServer, room: Room, redacts: str, prev: Event) -> Event:
    return fake.build(
        EventTemplate("m.room.redaction", fake.user("mallory"), {}, room.room_id, redacts=redacts),
        room.version,
        [prev],
        room.state,
    )


def redacted_because(room: Room, event_id: str) -> Any:
    return ok(client_event(room, event_id)).get("unsigned", {}).get("redacted_because")


@engines
def test_a_redaction_by_another_server_without_power_does_not_apply(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake, version="5")
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    msg_id = ok(room.server.authed(room.alice, "PUT", path, {"msgtype": "m.text", "body": "Hi"}))[
        "event_id"
    ]
    latest = Event(served_pdu(fake, room, msg_id), room.version, msg_id)
    spoof = redaction(fake, room, msg_id, latest)
    assert send(fake, room, spoof) == {spoof.event_id: {}}  # allowed in, not applied
    assert redacted_because(room, msg_id) is None
    assert ok(client_event(room, msg_id))["content"]["body"] == "Hi"
    # alice's own redaction applies, and a later spoof does not replace it
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/redact/{quote(msg_id)}/r{secrets.token_hex(4)}"
    real_id = ok(room.server.authed(room.alice, "PUT", path, {}))["event_id"]
    assert redacted_because(room, msg_id)["event_id"] == real_id
    real = Event(served_pdu(fake, room, real_id), room.version, real_id)
    again = redaction(fake, room, msg_id, real)
    assert send(fake, room, again) == {again.event_id: {}}
    assert redacted_because(room, msg_id)["event_id"] == real_id


@engines
def test_a_redaction_of_an_event_in_another_room_does_not_apply(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    first = new_room(two_servers, engine, fake)
    second = new_room(two_servers, engine, fake)
    target = message(fake, first, "stays")
    assert send(fake, first, target) == {target.event_id: {}}
    assert second.latest is not None
    across = redaction(fake, second, target.event_id, second.latest)
    send(fake, second, across)
    assert redacted_because(first, target.event_id) is None
    assert ok(client_event(first, target.event_id))["content"]["body"] == "stays"
    # withheld from its own room's clients too (SyTest 39redactions.pl:125), the sentinel
    # after it shown
    sentinel = message(fake, second, "sentinel", prev=[across])
    assert send(fake, second, sentinel) == {sentinel.event_id: {}}
    path = f"{CLIENT}/rooms/{quote(second.room_id)}/messages?dir=b&limit=50"
    shown = [e["event_id"] for e in ok(second.server.authed(second.alice, "GET", path))["chunk"]]
    assert sentinel.event_id in shown and across.event_id not in shown


def with_event_id(fake: FakeServer, room: Room, event: Event, event_id: str, redacts: str) -> Event:
    """A version 1 event under an ID of the sender's choosing (signed again)."""
    return fake.sign({**event.pdu, "event_id": event_id, "redacts": redacts}, room.version)


@engines
def test_redactions_of_themselves_or_of_each_other_do_not_apply(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake, version="1")
    assert room.latest is not None
    self_id = f"$self{secrets.token_hex(4)}:{fake.server_name}"
    itself = with_event_id(fake, room, redaction(fake, room, "", room.latest), self_id, self_id)
    assert send(fake, room, itself) == {self_id: {}}
    one_id = f"$one{secrets.token_hex(4)}:{fake.server_name}"
    two_id = f"$two{secrets.token_hex(4)}:{fake.server_name}"
    one = with_event_id(fake, room, redaction(fake, room, "", itself), one_id, two_id)
    assert send(fake, room, one) == {one_id: {}}
    two = with_event_id(fake, room, redaction(fake, room, "", one), two_id, one_id)
    assert send(fake, room, two) == {two_id: {}}
    for event_id in (self_id, one_id, two_id):
        assert redacted_because(room, event_id) is None
    reply = room.server.authed(
        room.alice, "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b&limit=20"
    )
    seen = {e["event_id"] for e in ok(reply)["chunk"]}
    assert {self_id, one_id, two_id} <= seen


# -- unknown rooms (issue 17 item 13) -----------------------------------------------------


@engines
def test_a_pdu_for_an_unknown_room_is_answered_with_an_error(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    room = new_room(two_servers, engine, fake)
    stray = message(fake, room, "stray")
    pdu = {**stray.pdu, "room_id": f"!nowhere{secrets.token_hex(3)}:{fake.server_name}"}
    signed = fake.sign(pdu, room.version)
    answer = ok(fake.send_transaction(room.server, secrets.token_hex(8), [signed.pdu]))["pdus"]
    assert list(answer) == [signed.event_id]
    assert "error" in answer[signed.event_id]


# -- soft failure and forward extremities (52soft-fail.pl, 50no-deextrem-outliers.pl) -----


def set_power_levels(fake: FakeServer, room: Room, change: dict[str, Any]) -> Event:
    """Alice changes the power levels; the fake learns the event (as it would by /send)."""
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/state/m.room.power_levels/"
    levels = ok(room.server.authed(room.alice, "GET", path))
    for key, value in change.items():
        levels[key] = {**levels.get(key, {}), **value}
    event_id = ok(room.server.authed(room.alice, "PUT", path, levels))["event_id"]
    return Event(served_pdu(fake, room, event_id), room.version, event_id)


def local_prev_events(fake: FakeServer, room: Room) -> list[Any]:
    """What alice's next message names as its prev events, as other servers see it."""
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    body = {"msgtype": "m.text", "body": "from alice"}
    event_id = ok(room.server.authed(room.alice, "PUT", path, body))["event_id"]
    prev: list[Any] = served_pdu(fake, room, event_id)["prev_events"]
    return prev


def make_join_prev_events(fake: FakeServer, room: Room) -> list[str]:
    """The room's forward extremities as a joining server sees them (make_join's template)."""
    user = quote(fake.user(f"probe{secrets.token_hex(2)}"))
    reply = fake.request(room.server, "GET", f"{FED}/v1/make_join/{room.room_id}/{user}?ver=10")
    prev: list[str] = ok(reply)["event"]["prev_events"]
    return prev


@engines
def test_soft_failed_events_are_hidden_and_never_keep_an_extremity(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    """J1 -> M1 -> SF1 -> SF2, and alice's PL1 on J1 forbidding `test.sf`; then M2 on PL1
    and SF2. SF1 and SF2 are soft-failed (a second one on the first too), M1 and M2 are
    served, and alice's next message builds on M2 alone."""
    room = new_room(two_servers, engine, fake)
    j1 = room.latest
    assert j1 is not None
    before_pl = dict(room.state)
    pl1 = set_power_levels(fake, room, {"events": {"test.sf": 50}})
    m1 = message(fake, room, "M1", prev=[j1])
    assert send(fake, room, m1) == {m1.event_id: {}}
    sf1 = fake.build(
        EventTemplate("test.sf", fake.user("mallory"), {"body": "SF1"}, room.room_id),
        room.version,
        [m1],
        before_pl,
    )
    assert send(fake, room, sf1) == {sf1.event_id: {}}
    sf2 = fake.build(
        EventTemplate("test.sf", fake.user("mallory"), {"body": "SF2"}, room.room_id),
        room.version,
        [sf1],
        before_pl,
    )
    assert send(fake, room, sf2) == {sf2.event_id: {}}
    room.state[("m.room.power_levels", "")] = pl1
    m2 = message(fake, room, "M2", prev=[pl1, sf2])
    assert send(fake, room, m2) == {m2.event_id: {}}
    reply = room.server.authed(
        room.alice, "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b&limit=50"
    )
    served = {e["event_id"] for e in ok(reply)["chunk"]}
    assert {m1.event_id, m2.event_id} <= served
    assert not {sf1.event_id, sf2.event_id} & served
    assert make_join_prev_events(fake, room) == [m2.event_id]
    assert local_prev_events(fake, room) == [m2.event_id]


@engines
def test_extremities_stay_when_the_next_events_come_as_outliers_and_rejects(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    """Alice's PL event B is the extremity; C (state, by mallory) comes in as the state at
    a gap, D and E by a user never joined are rejected: B stays the only extremity."""
    room = new_room(two_servers, engine, fake)
    b = set_power_levels(fake, room, {"users": {fake.user("mallory"): 100}})
    room.state[("m.room.power_levels", "")] = b
    state_before_c = [e.event_id for e in room.state.values()]
    c = fake.build(
        EventTemplate("test_state", fake.user("mallory"), {"body": "C"}, room.room_id, "C"),
        room.version,
        [b],
        room.state,
    )
    stranger = fake.user("stranger")
    d = message(fake, room, "event D", sender=stranger, prev=[c])
    e = message(fake, room, "event E", sender=stranger, prev=[d])
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [d.pdu]}))
    asked: list[str | None] = []

    def state_ids(request: ReceivedRequest) -> tuple[int, Any]:
        asked.append(request.query.get("event_id"))
        return 200, {"pdu_ids": state_before_c, "auth_chain_ids": list(c.auth_event_ids)}

    fake.route("GET", f"{FED}/v1/state_ids/", state_ids)
    assert send(fake, room, e) == {e.event_id: {}}  # stored, rejected
    assert asked == [c.event_id]
    assert make_join_prev_events(fake, room) == [b.event_id]
    f = message(fake, room, "event F", sender=stranger, prev=[e])
    assert send(fake, room, f) == {f.event_id: {}}  # stored, rejected
    assert make_join_prev_events(fake, room) == [b.event_id]
    assert not {"event D", "event E", "event F"} & set(timeline_bodies(room))


# -- taking a room over through the state at a gap (36state.pl:946) -----------------------


def built_on_nothing(
    fake: FakeServer,
    room: Room,
    template: EventTemplate,
    auth_state: dict[tuple[str, str], Event],
    depth: int,
) -> Event:
    """A version 1 event citing a prev event nobody has, at the depth it claims."""
    nowhere = PrevEvent(
        f"$nowhere{secrets.token_hex(4)}:{fake.server_name}", depth - 1, {"sha256": "AAAA"}
    )
    event = build_event(
        template,
        room_version=room.version,
        prev_events=[nowhere],
        current_state=auth_state,
        server_name=fake.server_name,
        signing_key=fake.signing_key,
    )
    return fake.sign({**event.pdu, "depth": depth}, room.version)


@engines
def test_a_power_levels_event_in_the_state_at_a_gap_cannot_take_the_room(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    """Mallory's E and D come with C, whose state (the fake says) is the create event, her
    join and X, a power levels event of hers at depth 0 giving her everything and alice
    nothing, authorised only by the create event and her join."""
    room = new_room(two_servers, engine, fake, version="1")
    mallory = fake.user("mallory")
    create = room.state[("m.room.create", "")]
    mallory_join = room.state[("m.room.member", mallory)]
    x = built_on_nothing(
        fake,
        room,
        EventTemplate(
            "m.room.power_levels",
            mallory,
            {"users": {mallory: 100, room.alice.user_id: 0}},
            room.room_id,
            "",
        ),
        {("m.room.create", ""): create, ("m.room.member", mallory): mallory_join},
        depth=0,
    )
    c = built_on_nothing(
        fake,
        room,
        EventTemplate("m.room.message", mallory, {"body": "hehehe..."}, room.room_id),
        room.state,
        depth=10,
    )
    d = message(fake, room, "totes legit", prev=[c])
    e = message(fake, room, "nothing to see", prev=[d])
    fake.route("POST", f"{FED}/v1/get_missing_events/", lambda _r: (200, {"events": [d.pdu]}))
    fake.route(
        "GET",
        f"{FED}/v1/state_ids/",
        lambda _r: (
            200,
            {
                "pdu_ids": [create.event_id, mallory_join.event_id, x.event_id],
                "auth_chain_ids": [create.event_id, mallory_join.event_id],
            },
        ),
    )
    send(fake, room, e)
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/state/m.room.power_levels/"
    levels = ok(room.server.authed(room.alice, "GET", path))
    assert levels["users"][room.alice.user_id] == 100
    assert levels["users"].get(mallory, 0) < 100
    # X, rejected, is in no state: the room as resolved still holds everything it held
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/joined_members"
    assert room.alice.user_id in ok(room.server.authed(room.alice, "GET", path))["joined"]
    # and the state other servers are told of is the same
    prev = local_prev_events(fake, room)[0]
    prev_id = prev[0] if isinstance(prev, list) else prev  # v1: [event ID, hashes]
    state = ok(state_ids_at(fake, room, prev_id))["pdu_ids"]
    assert x.event_id not in state


# -- power levels in a room that has none (41power-levels.pl:58) ---------------------------


@engines
def test_a_member_who_did_not_create_a_room_without_power_levels_cannot_set_them(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    """The fake hosts a room with no power levels event, created by ann and joined by bob;
    a local user joins it through the fake. Bob's power levels event is rejected."""
    server = pick(two_servers, engine)
    version = KNOWN_ROOM_VERSIONS["10"]
    room_id = f"!nopl{secrets.token_hex(4)}:{fake.server_name}"
    ann, bob = fake.user("ann"), fake.user("bob")
    create = build_create_event(
        room_version=version,
        sender=ann,
        content={},
        server_name=fake.server_name,
        signing_key=fake.signing_key,
        room_id=room_id,
    )
    fake.remember(create)
    state: dict[tuple[str, str], Event] = {("m.room.create", ""): create}
    latest = create
    for template in (
        EventTemplate("m.room.member", ann, {"membership": "join"}, room_id, ann),
        EventTemplate("m.room.join_rules", ann, {"join_rule": "public"}, room_id, ""),
        EventTemplate("m.room.member", bob, {"membership": "join"}, room_id, bob),
    ):
        latest = fake.build(template, version, [latest], state)
        state[(latest.type, latest.state_key or "")] = latest
    joins: list[Event] = []

    def make_join(request: ReceivedRequest) -> tuple[int, Any]:
        user_id = request.path.rpartition("/")[2]
        template = EventTemplate("m.room.member", user_id, {"membership": "join"}, room_id, user_id)
        pdu = build_unsigned_pdu(
            template,
            room_version=version,
            prev_events=[PrevEvent.of(joins[-1] if joins else latest)],
            current_state=state,
            server_name=fake.server_name,
        )
        return 200, {"room_version": "10", "event": pdu}

    def send_join(request: ReceivedRequest) -> tuple[int, Any]:
        event = Event(request.body, version, request.path.rpartition("/")[2])
        joins.append(event)
        return 200, {
            "origin": fake.server_name,
            "state": [e.pdu for e in state.values()],
            "auth_chain": [e.pdu for e in state.values()],
            "event": request.body,
            "members_omitted": False,
            "servers_in_room": [fake.server_name],
        }

    fake.route("GET", f"{FED}/v1/make_join/{room_id}/", make_join)
    fake.route("PUT", f"{FED}/v2/send_join/{room_id}/", send_join)
    carl = register(server, f"carl{secrets.token_hex(3)}")
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(fake.server_name)}"
    ok(server.authed(carl, "POST", path, {}))
    state_path = f"{CLIENT}/rooms/{quote(room_id)}/state"
    types = {e["type"] for e in ok(server.authed(carl, "GET", state_path))}
    assert "m.room.power_levels" not in types and "m.room.join_rules" in types
    join_event = joins[-1]
    joined_state = {**state, ("m.room.member", carl.user_id): join_event}
    power = fake.build(
        EventTemplate("m.room.power_levels", bob, {"users": {bob: 100}}, room_id, ""),
        version,
        [join_event],
        joined_state,
    )
    reply = fake.send_transaction(server, secrets.token_hex(8), [power.pdu])
    assert ok(reply)["pdus"] == {power.event_id: {}}  # stored, rejected: shown below
    refused(server.authed(carl, "GET", f"{state_path}/m.room.power_levels/"), 404, "M_NOT_FOUND")
    # the creator may
    ann_power = fake.build(
        EventTemplate("m.room.power_levels", ann, {"users": {ann: 100}}, room_id, ""),
        version,
        [join_event],
        joined_state,
    )
    reply = fake.send_transaction(server, secrets.token_hex(8), [ann_power.pdu])
    assert ok(reply)["pdus"] == {ann_power.event_id: {}}
    levels = ok(server.authed(carl, "GET", f"{state_path}/m.room.power_levels/"))
    assert levels["users"] == {ann: 100}
