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

from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session

FEDERATION = "/_matrix/federation/v1"
_txn = itertools.count()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def ok(reply: Reply) -> Any:
    assert reply.status == 200, reply.body
    return reply.json()


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
