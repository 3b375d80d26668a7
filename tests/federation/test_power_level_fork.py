"""An evil server forks a room's power levels; state resolution v2 decides, end to end.

The room lives on A (SQLite); Bob is on B (PostgreSQL); Mallory is on a fake server that
signs whatever it likes; each fork is built on Mallory's join, an old event, while Alice
changes the power levels on the honest branch on A. What each server shows its clients
is what the spec's algorithm says, and A and B end with the same state.

- An honest demotion beats the fork: Mallory (50, allowed to edit power levels) silences
  the room on a fork that reaches B first, where it takes effect (making herself admin and
  demoting the creator is rejected outright); Alice demotes her on A.
  B, resolving its two branches, applies Alice's change first (more powerful sender) and
  Mallory's then fails against it; on A, where the fork arrives late, it is soft-failed.
  Mallory's rename on her fork is soft-failed on both; her merge of the branches may talk
  (the resolved events_default is 0) but not set a topic.
- Between equal admins (100) the change dated last wins, though the fork arrives last.
- A less powerful sender's change is applied after a more powerful one's, so Mallory
  (50) wins over Alice's promotion of Bob (40) even when dated before it.

spec: rooms/fragments/v2-state-res.md; server-server-api "Soft failure".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, JoinedRoom
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import has_message, ok, refused, sync_until
from tests.integration.matrix import CLIENT, Session

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def wait_for(what: str, probe: Callable[[], Any], expected: Any) -> None:
    """Poll `probe` until it returns `expected`; fail with what it last returned."""
    deadline = time.monotonic() + TIMEOUT
    while (found := probe()) != expected:
        assert time.monotonic() < deadline, f"{what}: still {found!r}, expected {expected!r}"
        time.sleep(0.1)


def power_levels(server: FederatingServer, user: Session, room_id: str) -> dict[str, Any]:
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.power_levels"
    content: dict[str, Any] = ok(server.authed(user, "GET", path))
    return content


def state_ids(server: FederatingServer, user: Session, room_id: str) -> dict[tuple[str, str], str]:
    events = ok(server.authed(user, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state"))
    return {(e["type"], e["state_key"]): e["event_id"] for e in events}


def joined(server: FederatingServer, user: Session, room_id: str) -> set[str]:
    path = f"{CLIENT}/rooms/{quote(room_id)}/joined_members"
    return set(ok(server.authed(user, "GET", path))["joined"])


def say(server: FederatingServer, user: Session, room_id: str, body: str) -> Any:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{secrets.token_hex(4)}"
    return server.authed(user, "PUT", path, {"msgtype": "m.text", "body": body})


def shown_since(server: FederatingServer, user: Session, room_id: str, since: str) -> set[str]:
    """The IDs of the events a client is shown after `since`: by an incremental /sync and
    by /messages paging back over the whole room."""
    path = f"{CLIENT}/sync?since={quote(since)}&timeout=0"
    room = ok(server.authed(user, "GET", path)).get("rooms", {}).get("join", {}).get(room_id)
    ids = {e["event_id"] for e in room["timeline"]["events"]} if room else set()
    path = f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=100"
    page = ok(server.authed(user, "GET", path))
    return ids | {e["event_id"] for e in page["chunk"]}


def sync_token(server: FederatingServer, user: Session) -> str:
    return str(ok(server.authed(user, "GET", CLIENT + "/sync?timeout=0"))["next_batch"])


def send(fake: FakeServer, server: FederatingServer, *events: Event) -> dict[str, Any]:
    reply = fake.send_transaction(server, secrets.token_hex(8), [e.pdu for e in events])
    answers: dict[str, Any] = ok(reply)["pdus"]
    return answers


@dataclass(frozen=True)
class SharedRoom:
    """A room on A (Alice's) that Bob on B and Mallory on the fake have joined."""

    a: FederatingServer
    b: FederatingServer
    alice: Session
    bob: Session
    mallory: str
    room: JoinedRoom
    # the power levels Alice created the room with
    initial: dict[str, Any]

    @property
    def room_id(self) -> str:
        return self.room.room_id

    def change_power_levels(self, content: dict[str, Any]) -> str:
        """Alice's change of power levels on A; its event ID."""
        path = f"{CLIENT}/rooms/{quote(self.room_id)}/state/m.room.power_levels"
        return str(ok(self.a.authed(self.alice, "PUT", path, content))["event_id"])

    def fork(self, fake: FakeServer, content: dict[str, Any], **kw: Any) -> Event:
        """Mallory's power levels built on her join, as if nothing had happened since."""
        template = EventTemplate(
            "m.room.power_levels", self.mallory, content, self.room_id, state_key=""
        )
        return fake.build(template, self.room.version, [self.room.join], self.room.state, **kw)


def shared_room(
    pair: ServerPair,
    fake: FakeServer,
    room_version: str,
    levels: Callable[[str, str], dict[str, Any]],
) -> SharedRoom:
    """A public room on A whose power levels `levels(alice, mallory)` overrides; Bob joins
    from B and Mallory through the fake; the honest branch then moves on past Mallory's
    join, the base of her forks (B learns of the join from Alice's message after it, which
    names it as a prev event)."""
    a, b = pair
    tag = secrets.token_hex(3)
    alice = register(a, f"alice{tag}")
    bob = register(b, f"bob{tag}")
    mallory = fake.user(f"mallory{tag}")
    body = {
        "preset": "public_chat",
        "room_version": room_version,
        "power_level_content_override": levels(alice.user_id, mallory),
    }
    room_id = ok(a.authed(alice, "POST", CLIENT + "/createRoom", body))["room_id"]
    ok(b.authed(bob, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={a.server_name}"))
    room = fake.join(a, room_id, mallory)
    assert room.version.identifier == room_version
    ok(say(a, alice, room_id, "before the fork"))
    sync_until(b, bob, has_message(room_id, "before the fork"))
    assert mallory in joined(b, bob, room_id)
    initial = power_levels(a, alice, room_id)
    return SharedRoom(a, b, alice, bob, mallory, room, initial)


@pytest.mark.parametrize("room_version", ["10", "11"])
def test_an_honest_demotion_beats_a_fork_built_before_it(
    two_servers: ServerPair, fake: FakeServer, room_version: str
) -> None:
    """Mallory may edit power levels (50); Alice (100) demotes her while her fork silences
    the room."""
    shared = shared_room(
        two_servers,
        fake,
        room_version,
        lambda alice, mallory: {
            "users": {alice: 100, mallory: 50},
            "events": {"m.room.power_levels": 50},
        },
    )
    a, b, alice, bob, mallory = shared.a, shared.b, shared.alice, shared.bob, shared.mallory
    room, room_id, initial = shared.room, shared.room_id, shared.initial
    assert (initial["users"], initial["events_default"]) == ({alice.user_id: 100, mallory: 50}, 0)

    # Mallory's fork, valid against the state at her join, reaches B alone; beside it, a
    # bolder one that makes her the admin and demotes the room's creator is rejected
    # outright, as it is not allowed even at her join
    silenced = {**initial, "events_default": 50}
    fork = shared.fork(fake, silenced)
    usurper = shared.fork(fake, {**initial, "users": {alice.user_id: 0, mallory: 100}})
    answers = send(fake, b, fork, usurper)
    # both processed (the usurper stored as rejected: the power levels below show which)
    assert answers == {fork.event_id: {}, usurper.event_id: {}}, answers
    assert power_levels(b, bob, room_id) == silenced
    refused(say(b, bob, room_id, "may I speak?"), 403, "M_FORBIDDEN")

    # Alice, who never saw the fork, demotes Mallory on A; B resolves its two branches
    demoted = {**initial, "users": {alice.user_id: 100}, "events": {"m.room.power_levels": 100}}
    demotion_id = shared.change_power_levels(demoted)
    wait_for("B's power levels", lambda: power_levels(b, bob, room_id), demoted)

    # the fork reaches A after the demotion: soft-failed, the demotion stays
    since_a = sync_token(a, alice)
    answers = send(fake, a, fork, usurper)
    # both processed (the usurper stored as rejected: the power levels below show which)
    assert answers == {fork.event_id: {}, usurper.event_id: {}}, answers
    assert power_levels(a, alice, room_id) == demoted
    # Bob is no longer silenced
    spoken = ok(say(b, bob, room_id, "I may speak again"))["event_id"]
    sync_until(a, alice, has_message(room_id, "I may speak again"))

    # Mallory goes on on her fork: a rename she could make there, soft-failed on both
    since_b = sync_token(b, bob)
    fork_state = {**room.state, ("m.room.power_levels", ""): fork}
    rename = fake.build(
        EventTemplate("m.room.name", mallory, {"name": "Mallory's room"}, room_id, state_key=""),
        room.version,
        [fork],
        fork_state,
    )
    for server in (a, b):
        assert send(fake, server, rename) == {rename.event_id: {}}
    # then merges both branches, still citing her fork's power levels: the state before
    # these is the resolution, with Alice's power levels and no rename
    demotion = fake.fetch(a, demotion_id, room.version)
    merged_message = fake.build(
        EventTemplate("m.room.message", mallory, {"msgtype": "m.text", "body": "demoted"}, room_id),
        room.version,
        [rename, demotion],
        fork_state,
    )
    merged_topic = fake.build(
        EventTemplate("m.room.topic", mallory, {"topic": "Mallory rules"}, room_id, state_key=""),
        room.version,
        [rename, demotion],
        fork_state,
    )
    for server in (a, b):
        answers = send(fake, server, merged_message, merged_topic)
        # both processed; the topic stored as rejected (no topic is set, checked below)
        assert answers == {merged_message.event_id: {}, merged_topic.event_id: {}}, answers

    for server, user in ((a, alice), (b, bob)):
        assert power_levels(server, user, room_id) == demoted
        sync_until(server, user, has_message(room_id, "demoted"))
        for state_type in ("m.room.name", "m.room.topic"):
            path = f"{CLIENT}/rooms/{quote(room_id)}/state/{state_type}"
            refused(server.authed(user, "GET", path), 404, "M_NOT_FOUND")
    shown_a = shown_since(a, alice, room_id, since_a)
    assert {spoken, merged_message.event_id} <= shown_a
    assert not {fork.event_id, usurper.event_id, rename.event_id, merged_topic.event_id} & shown_a
    shown_b = shown_since(b, bob, room_id, since_b)
    assert merged_message.event_id in shown_b
    assert not {usurper.event_id, rename.event_id, merged_topic.event_id} & shown_b
    # the two servers agree on every piece of state
    assert state_ids(a, alice, room_id) == state_ids(b, bob, room_id)


@pytest.mark.parametrize("fork_dated", ["before", "after"])
def test_between_equal_admins_the_later_dated_change_wins_wherever_it_arrives_last(
    two_servers: ServerPair, fake: FakeServer, fork_dated: str
) -> None:
    """Alice and Mallory are both admins (100). Alice restricts renames to admins; Mallory's
    fork, from her join and arriving after Alice's change everywhere, silences the room.
    Each passes against the other, so neither is soft-failed, and v2 orders equal senders by
    origin_server_ts: the change dated last is applied last and wins, on both servers,
    though the fork arrived last in both cases."""
    shared = shared_room(
        two_servers,
        fake,
        "11",
        lambda alice, mallory: {"users": {alice: 100, mallory: 100}},
    )
    a, b, alice, bob = shared.a, shared.b, shared.alice, shared.bob
    room_id, initial = shared.room_id, shared.initial

    restricted = {**initial, "events": {**initial["events"], "m.room.name": 100}}
    restriction_id = shared.change_power_levels(restricted)
    wait_for("B's power levels", lambda: power_levels(b, bob, room_id), restricted)
    restriction = fake.fetch(a, restriction_id, shared.room.version)

    silenced = {**initial, "events_default": 50}
    if fork_dated == "before":
        fork_ts = shared.room.join.origin_server_ts + 1
        assert fork_ts < restriction.origin_server_ts
    else:
        fork_ts = restriction.origin_server_ts + 1000
    fork = shared.fork(fake, silenced, origin_server_ts=fork_ts)
    for server in (a, b):
        assert send(fake, server, fork) == {fork.event_id: {}}

    winner = restricted if fork_dated == "before" else silenced
    for server, user in ((a, alice), (b, bob)):
        assert power_levels(server, user, room_id) == winner
        # neither change was soft-failed: clients see both
        path = f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=100"
        shown = {e["event_id"] for e in ok(server.authed(user, "GET", path))["chunk"]}
        assert {restriction_id, fork.event_id} <= shown
    if winner is silenced:
        refused(say(b, bob, room_id, "may I speak?"), 403, "M_FORBIDDEN")
    else:
        ok(say(b, bob, room_id, "I may speak"))
        sync_until(a, alice, has_message(room_id, "I may speak"))
    assert state_ids(a, alice, room_id) == state_ids(b, bob, room_id)


def test_a_lower_powered_fork_is_applied_after_the_admins_change_whatever_its_date(
    two_servers: ServerPair, fake: FakeServer
) -> None:
    """v2 applies power events of more powerful senders first. Alice (100) makes Bob a
    helper (40); Mallory (50, allowed to edit power levels), on a fork dated before that,
    silences the room. Mallory's change passes against Alice's (Bob's 40 is below her 50),
    so, applied after it, it wins: by the power order, not by the dates, which would
    have put Alice's change last."""
    shared = shared_room(
        two_servers,
        fake,
        "10",
        lambda alice, mallory: {
            "users": {alice: 100, mallory: 50},
            "events": {"m.room.power_levels": 50},
        },
    )
    a, b, alice, bob = shared.a, shared.b, shared.alice, shared.bob
    room_id, initial = shared.room_id, shared.initial
    helper = {**initial, "users": {**initial["users"], bob.user_id: 40}}
    promotion_id = shared.change_power_levels(helper)
    wait_for("B's power levels", lambda: power_levels(b, bob, room_id), helper)
    promotion = fake.fetch(a, promotion_id, shared.room.version)

    silenced = {**initial, "events_default": 50}
    fork_ts = shared.room.join.origin_server_ts + 1
    assert fork_ts < promotion.origin_server_ts
    fork = shared.fork(fake, silenced, origin_server_ts=fork_ts)
    for server in (a, b):
        assert send(fake, server, fork) == {fork.event_id: {}}
    for server, user in ((a, alice), (b, bob)):
        assert power_levels(server, user, room_id) == silenced
    refused(say(b, bob, room_id, "may I speak?"), 403, "M_FORBIDDEN")
    assert state_ids(a, alice, room_id) == state_ids(b, bob, room_id)
