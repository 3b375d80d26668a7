"""History served to a server whose user joined the room, and asked of it: a fake remote
server (fake_server.py) joins a Ranvier room through make_join and send_join, then reads
the room's history over signed requests; the room's `joined` history visibility hides
what came before its join. Once on each engine."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import ok
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session

FEDERATION = "/_matrix/federation/v1"
_txn = itertools.count()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def send(server: FederatingServer, session: Session, room_id: str, body: str) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{next(_txn)}"
    event_id: str = ok(server.authed(session, "PUT", path, {"msgtype": "m.text", "body": body}))[
        "event_id"
    ]
    return event_id


@dataclass(frozen=True)
class Room:
    server: FederatingServer
    alice: Session
    room_id: str
    version: RoomVersion
    before: str
    join: Event
    after: str


def join_room(
    fake: FakeServer, server: FederatingServer, room_id: str
) -> tuple[Event, RoomVersion]:
    """The fake's user joins through make_join and send_join (v2)."""
    user = quote(fake.user("mallory"))
    template = ok(
        fake.request(server, "GET", f"{FEDERATION}/make_join/{room_id}/{user}?ver=10&ver=12")
    )
    version = KNOWN_ROOM_VERSIONS[template["room_version"]]
    event = fake.sign(template["event"], version)
    path = f"/_matrix/federation/v2/send_join/{room_id}/{quote(event.event_id)}"
    ok(fake.request(server, "PUT", path, event.pdu))
    return event, version


def make_room(fake: FakeServer, server: FederatingServer) -> Room:
    alice = register(server, f"alice{secrets.token_hex(3)}")
    room_id = ok(server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"}))[
        "room_id"
    ]
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.history_visibility/"
    ok(server.authed(alice, "PUT", path, {"history_visibility": "joined"}))
    before = send(server, alice, room_id, "before")
    join, version = join_room(fake, server, room_id)
    after = send(server, alice, room_id, "after")
    return Room(server, alice, room_id, version, before, join, after)


@pytest.fixture(scope="module")
def rooms(two_servers: ServerPair, fake: FakeServer) -> dict[str, Room]:
    return {
        "sqlite": make_room(fake, two_servers.first),
        "postgres": make_room(fake, two_servers.second),
    }


@pytest.fixture(params=["sqlite", "postgres"])
def room(request: pytest.FixtureRequest, rooms: dict[str, Room]) -> Room:
    found: Room = rooms[request.param]
    return found


def get(fake: FakeServer, room: Room, path: str, **params: Any) -> Any:
    query = f"?{urlencode(params, doseq=True)}" if params else ""
    return ok(fake.request(room.server, "GET", FEDERATION + path + query))


def test_a_member_server_reads_from_its_join_on(fake: FakeServer, room: Room) -> None:
    r = quote(room.room_id)
    pdus = get(fake, room, f"/backfill/{r}", v=room.after, limit=4)["pdus"]
    ids = [compute_event_id(p, room.version) for p in pdus]
    assert ids[:3] == [room.after, room.join.event_id, room.before]
    assert pdus[0]["content"]["body"] == "after"
    assert pdus[1]["content"]["membership"] == "join"
    assert pdus[2]["content"] == {}  # before its join, under `joined`
    (before,) = get(fake, room, f"/event/{quote(room.before)}")["pdus"]
    assert before["content"] == {}
    (after,) = get(fake, room, f"/event/{quote(room.after)}")["pdus"]
    assert after["content"]["body"] == "after"
    state = get(fake, room, f"/state_ids/{r}", event_id=room.after)
    assert room.join.event_id in state["pdu_ids"]
    missing = ok(
        fake.request(
            room.server,
            "POST",
            f"{FEDERATION}/get_missing_events/{r}",
            {"earliest_events": [room.before], "latest_events": [room.after]},
        )
    )
    assert [compute_event_id(e, room.version) for e in missing["events"]] == [room.join.event_id]
    # the ACL shuts the member server out like any other
    path = f"{CLIENT}/rooms/{r}/state/m.room.server_acl/"
    ok(room.server.authed(room.alice, "PUT", path, {"allow": ["*"], "deny": ["localhost"]}))
    try:
        reply = fake.request(room.server, "GET", f"{FEDERATION}/event/{quote(room.after)}")
        assert reply.status == 403, reply.body
    finally:
        ok(room.server.authed(room.alice, "PUT", path, {"allow": ["*"]}))


def event_ts(room: Room, event_id: str) -> int:
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/event/{quote(event_id)}"
    ts: int = ok(room.server.authed(room.alice, "GET", path))["origin_server_ts"]
    return ts


def client_timestamp(room: Room, ts: int, direction: str) -> Reply:
    path = f"/_matrix/client/v1/rooms/{quote(room.room_id)}/timestamp_to_event"
    return room.server.authed(room.alice, "GET", f"{path}?ts={ts}&dir={direction}")


def test_timestamp_to_event_asks_the_member_server_past_the_edge(
    fake: FakeServer, room: Room
) -> None:
    after_ts = event_ts(room, room.after)
    # an event of the fake's that this server never received, after everything it has
    state = {(e.type, e.state_key or ""): e for e in [room.join]}
    later = fake.build(
        EventTemplate(
            "m.room.message",
            fake.user("mallory"),
            {"msgtype": "m.text", "body": "not sent"},
            room.room_id,
        ),
        room.version,
        [room.join],
        {**state, **auth_state(fake, room)},
        origin_server_ts=after_ts + 5_000,
    )
    asked: list[dict[str, str]] = []

    def timestamp_answer(received: Any) -> tuple[int, Any]:
        asked.append(dict(received.query))
        return 200, {"event_id": later.event_id, "origin_server_ts": later.origin_server_ts}

    prefix = f"{FEDERATION}/timestamp_to_event/"
    fake.route("GET", prefix, timestamp_answer)
    # backwards from after both: the newest local event is a forward extremity, past which
    # the fake may know more; its event is closer, fetched, checked and answered
    found = ok(client_timestamp(room, after_ts + 10_000, "b"))
    assert found == {"event_id": later.event_id, "origin_server_ts": after_ts + 5_000}
    assert asked == [{"ts": str(after_ts + 10_000), "dir": "b"}]
    # forwards from the start: the create event has nothing before it, no one is asked
    first = ok(client_timestamp(room, 0, "f"))
    assert first["origin_server_ts"] <= after_ts and len(asked) == 1
    # a remote answer further away than the newest local event is not taken
    older = fake.build(
        EventTemplate(
            "m.room.message",
            fake.user("mallory"),
            {"msgtype": "m.text", "body": "old"},
            room.room_id,
        ),
        room.version,
        [room.join],
        {**state, **auth_state(fake, room)},
        origin_server_ts=after_ts - 60_000,
    )
    fake.route("GET", prefix, lambda _: (200, {"event_id": older.event_id, "origin_server_ts": 1}))
    newest = latest_event_id(room)
    assert ok(client_timestamp(room, after_ts + 10_000, "b"))["event_id"] == newest
    # nor a remote event that cannot be fetched
    fake.route("GET", prefix, lambda _: (200, {"event_id": "$nothing", "origin_server_ts": 1}))
    assert ok(client_timestamp(room, after_ts + 10_000, "b"))["event_id"] == newest


def latest_event_id(room: Room) -> str:
    path = f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b&limit=1"
    event_id: str = ok(room.server.authed(room.alice, "GET", path))["chunk"][0]["event_id"]
    return event_id


def auth_state(fake: FakeServer, room: Room) -> dict[tuple[str, str], Event]:
    """The room's create, power levels and join rules, as the fake would have from its join."""
    r = quote(room.room_id)
    ids = get(fake, room, f"/state_ids/{r}", event_id=room.join.event_id)["pdu_ids"]
    found: dict[tuple[str, str], Event] = {}
    for event_id in ids:
        (pdu,) = get(fake, room, f"/event/{quote(event_id)}")["pdus"]
        event = Event(pdu, room.version, event_id)
        if event.type != "m.room.member":
            found[(event.type, event.state_key or "")] = event
    return found


def test_a_server_that_joined_later_finds_earlier_events_by_timestamp(
    two_servers: ServerPair,
) -> None:
    """Both sides Ranvier: bob's server joins alice's room late; bob asks for the event
    at a time before his join, which his server does not hold, and gets alice's server's
    answer, fetched and checked."""
    for home, visitor in (
        (two_servers.first, two_servers.second),
        (two_servers.second, two_servers.first),
    ):
        alice = register(home, f"alice{secrets.token_hex(3)}")
        room_id = ok(home.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"}))[
            "room_id"
        ]
        early = send(home, alice, room_id, "early")
        early_ts = ok(
            home.authed(alice, "GET", f"{CLIENT}/rooms/{quote(room_id)}/event/{quote(early)}")
        )["origin_server_ts"]
        bob = register(visitor, f"bob{secrets.token_hex(3)}")
        join = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(home.server_name)}"
        ok(visitor.authed(bob, "POST", join, {}))
        path = f"/_matrix/client/v1/rooms/{quote(room_id)}/timestamp_to_event"
        found = ok(visitor.authed(bob, "GET", f"{path}?ts={early_ts}&dir=f"))
        assert found == {"event_id": early, "origin_server_ts": early_ts}
