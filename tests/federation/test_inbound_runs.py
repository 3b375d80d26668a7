"""A transaction's PDUs as another server and a local user observe them, on both engines,
whatever Ranvier persists together: a run of messages each on the one before is interleaved
with a join, a leave, an unauthorised message, a duplicate and a fork, and each PDU must
be answered, shown or withheld, and built on exactly as when they came one by one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederationCA, register
from tests.federation.test_inbound_events import (
    ENGINES,
    FED,
    Room,
    join,
    message,
    pick,
    send,
    timeline_bodies,
)
from tests.integration.matrix import CLIENT


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


@pytest.fixture
def room(request: pytest.FixtureRequest, two_servers: ServerPair, fake: FakeServer) -> Room:
    """A fresh public room of a local user, joined by the fake's mallory."""
    server = pick(two_servers, request.param)
    alice = register(server, f"alice{secrets.token_hex(3)}")
    reply = server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id = reply.json()["room_id"]
    create = server.authed(alice, "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.create")
    new = Room(server, alice, room_id, KNOWN_ROOM_VERSIONS[create.json()["room_version"]])
    join(fake, new, fake.user("mallory"))
    return new


engines = pytest.mark.parametrize("room", ENGINES, indirect=True)


def membership(fake: FakeServer, room: Room, user_id: str, kind: str) -> Event:
    assert room.latest is not None
    event = fake.build(
        EventTemplate("m.room.member", user_id, {"membership": kind}, room.room_id, user_id),
        room.version,
        [room.latest],
        room.state,
    )
    room.state[("m.room.member", user_id)] = event
    return event


def local_message_prevs(fake: FakeServer, room: Room, body: str) -> set[str]:
    """The prev events of a message the local user sends now, as the fake reads it."""
    reply = room.server.authed(
        room.alice,
        "PUT",
        f"{CLIENT}/rooms/{room.room_id}/send/m.room.message/t{secrets.token_hex(4)}",
        {"msgtype": "m.text", "body": body},
    )
    assert reply.status == 200, reply.body
    event_id = reply.json()["event_id"]
    reply = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(event_id)}")
    assert reply.status == 200, reply.body
    prevs: list[str] = reply.json()["pdus"][0]["prev_events"]
    return set(prevs)


def joined(room: Room) -> set[str]:
    reply = room.server.authed(room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/joined_members")
    assert reply.status == 200, reply.body
    return set(reply.json()["joined"])


def chain(
    fake: FakeServer, room: Room, bodies: list[str], sender: str | None = None
) -> list[Event]:
    events = []
    for body in bodies:
        event = message(fake, room, body, sender=sender)
        room.latest = event
        events.append(event)
    return events


@engines
def test_messages_state_and_refusals_in_one_transaction(fake: FakeServer, room: Room) -> None:
    tag = secrets.token_hex(3)
    bob = fake.user(f"bob{tag}")
    first = chain(fake, room, [f"{tag} m1", f"{tag} m2", f"{tag} m3"])
    # bob joins mid-run: his messages after it are allowed only by the join before them
    bob_join = membership(fake, room, bob, "join")
    room.latest = bob_join
    bobs = chain(fake, room, [f"{tag} bob1", f"{tag} bob2"], sender=bob)
    # a message by someone never in the room, on the run: rejected, the run goes on past it
    assert room.latest is not None
    intruder = message(fake, room, f"{tag} intruder", sender=fake.user(f"eve{tag}"))
    after = chain(fake, room, [f"{tag} m4"])
    bob_leave = membership(fake, room, bob, "leave")
    room.latest = bob_leave
    # bob is gone: his message after the leave is rejected
    late = message(fake, room, f"{tag} bob late", sender=bob)
    last = chain(fake, room, [f"{tag} m5", f"{tag} m6"])
    pdus = [*first, bob_join, *bobs, intruder, *after, first[1], bob_leave, late, *last]

    results = send(fake, room, *pdus)

    # every PDU processed: the rejected ones too (as Synapse), the duplicate once
    assert results == {event.event_id: {} for event in pdus}
    bodies = timeline_bodies(room)
    shown = [body for body in reversed(bodies) if body.startswith(tag)]
    assert shown == [f"{tag} {b}" for b in ("m1", "m2", "m3", "bob1", "bob2", "m4", "m5", "m6")]
    assert bob not in joined(room)
    # the local user's next message builds on the newest remote one, the only extremity
    assert local_message_prevs(fake, room, f"{tag} reply") == {last[-1].event_id}


@engines
def test_a_fork_within_a_transaction_is_merged_by_the_next_local_message(
    fake: FakeServer, room: Room
) -> None:
    tag = secrets.token_hex(3)
    base = chain(fake, room, [f"{tag} base"])[0]
    left = chain(fake, room, [f"{tag} left 1", f"{tag} left 2"])
    room.latest = base
    right = chain(fake, room, [f"{tag} right 1", f"{tag} right 2"])

    results = send(fake, room, base, *left, *right)

    assert results == {event.event_id: {} for event in [base, *left, *right]}
    shown = {body for body in timeline_bodies(room) if body.startswith(tag)}
    assert shown == {f"{tag} {b}" for b in ("base", "left 1", "left 2", "right 1", "right 2")}
    assert local_message_prevs(fake, room, f"{tag} merge") == {
        left[-1].event_id,
        right[-1].event_id,
    }
    # the room goes on from the local merge: a remote message on it is accepted
    reply = room.server.authed(
        room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/messages?dir=b&limit=1"
    )
    merge_id = reply.json()["chunk"][0]["event_id"]
    merge = fake.request(room.server, "GET", f"{FED}/v1/event/{quote(merge_id)}")
    merge_event = Event(merge.json()["pdus"][0], room.version, merge_id)
    room.latest = merge_event
    tail = message(fake, room, f"{tag} after merge")
    assert send(fake, room, tail) == {tail.event_id: {}}
    assert f"{tag} after merge" in timeline_bodies(room)
