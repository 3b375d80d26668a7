"""The end-to-end scenario: three Ranvier servers (A and B on SQLite, C on PostgreSQL) and
a real Synapse share two rooms, one made on A and one on Synapse. Users of every server
join, talk, change the name, topic and power levels, redact, kick, ban, leave, knock and
are let in; then each server's /messages shows the same events in the same order and its
/sync the same current state. Last, C is stopped while A talks, started again, and
catches up.

Each event is awaited on every server before the next is sent, so every server orders
the room's events as their origin did. History visibility is `shared` and everyone joins
before the conversation, which starts at a marker message: the event lists compared are
those from the marker on (what came before a server's join is not the point here).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

from tests.conftest import new_database_config
from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    launch_federating_server,
    register,
    restart,
)
from tests.federation.replies import ClientServer, has_message, in_section, ok, sync_until
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.conftest import as_yaml_section
from tests.integration.matrix import CLIENT, Session

# a stopped server is retried soon, for the catch-up after C's restart
QUICK_RETRIES = {
    # history() reads a current token from an incremental sync, which presence from the
    # other servers makes non-empty, so the response cache would answer it from before
    "caches": {"sync_response_cache_duration": 0},
    "federation": {
        "destination_min_retry_interval": "500ms",
        "destination_max_retry_interval": "2s",
    },
}
SHARED = {"type": "m.room.history_visibility", "content": {"history_visibility": "shared"}}


@dataclass
class Servers:
    a: FederatingServer  # SQLite
    b: FederatingServer  # SQLite
    c: FederatingServer  # PostgreSQL
    synapse: SynapsePeer
    # one user per server who stays joined throughout, to read each server's view
    readers: dict[str, Session] = field(default_factory=dict)

    def all(self) -> list[ClientServer]:
        return [self.a, self.b, self.c, self.synapse]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def second_sqlite_section(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, Any]]:
    async for config in new_database_config("sqlite", tmp_path_factory.mktemp("db-b")):
        yield as_yaml_section(config)


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
    second_sqlite_section: dict[str, Any],
    postgres_section: dict[str, Any],
    synapse: SynapsePeer,
) -> Iterator[Servers]:
    sections = [sqlite_section, second_sqlite_section, postgres_section]
    launched: list[FederatingServer] = []
    try:
        for name, section in zip("abc", sections, strict=True):
            directory = tmp_path_factory.mktemp(f"hs-{name}")
            launched.append(launch_federating_server(directory, section, test_ca, **QUICK_RETRIES))
        for server in launched:
            server.wait_until_serving()
        scenario = Servers(*launched, synapse=synapse)
        yield scenario
        # C may have been restarted by then
        launched[2] = scenario.c
    finally:
        for server in launched:
            assert server.stop() == 0, server.log()[-6000:]


def send(
    server: ClientServer, session: Session, room_id: str, event_type: str, content: Any
) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/{event_type}/t{secrets.token_hex(6)}"
    event_id: str = ok(server.authed(session, "PUT", path, content))["event_id"]
    return event_id


def say(server: ClientServer, session: Session, room_id: str, body: str) -> str:
    return send(server, session, room_id, "m.room.message", {"msgtype": "m.text", "body": body})


def put_state(
    server: ClientServer, session: Session, room_id: str, event_type: str, content: Any
) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/{event_type}"
    event_id: str = ok(server.authed(session, "PUT", path, content))["event_id"]
    return event_id


def get_state(server: ClientServer, session: Session, room_id: str, event_type: str) -> Any:
    return ok(server.authed(session, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/{event_type}"))


def act(server: ClientServer, session: Session, room_id: str, action: str, user_id: str) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/{action}"
    ok(server.authed(session, "POST", path, {"user_id": user_id}))


def join(server: ClientServer, session: Session, room_id: str, via: str) -> None:
    ok(server.authed(session, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={quote(via)}"))


def membership_event(
    server: ClientServer, session: Session, room_id: str, user_id: str, membership: str
) -> str:
    """The ID of `user_id`'s member event once the room's current state on `server` (as
    `session` sees it) holds them as `membership`."""
    deadline = time.monotonic() + 30
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
    path += "?format=event"
    while True:
        reply = server.authed(session, "GET", path)
        if reply.status == 200 and reply.json()["content"]["membership"] == membership:
            event_id: str = reply.json()["event_id"]
            return event_id
        assert time.monotonic() < deadline, (user_id, membership, reply.body)
        time.sleep(0.1)


def everywhere(scenario: Servers, room_id: str, event_id: str, timeout: float = 30.0) -> None:
    """Wait until every server that reads the room (a reader joined) holds `event_id`."""
    deadline = time.monotonic() + timeout
    path = f"{CLIENT}/rooms/{quote(room_id)}/event/{quote(event_id)}"
    for name, server in zip("abcs", scenario.all(), strict=True):
        reader = scenario.readers.get(f"{name}:{room_id}")
        if reader is None:
            continue
        while (reply := server.authed(reader, "GET", path)).status != 200:
            assert time.monotonic() < deadline, (name, event_id, reply.body)
            time.sleep(0.1)


def history(server: ClientServer, session: Session, room_id: str, since: str) -> list[str]:
    """The IDs of the room's events from `since` (an event ID) to the newest, oldest first,
    read backwards through /messages from the user's /sync."""
    response = ok(server.authed(session, "GET", f"{CLIENT}/sync?timeout=0"))
    # an initial sync may be answered from the cache: an incremental one is current
    batch = quote(response["next_batch"])
    response = ok(server.authed(session, "GET", f"{CLIENT}/sync?timeout=0&since={batch}"))
    token = quote(response["next_batch"])
    found: list[str] = []
    for _ in range(50):
        path = f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=10&from={token}"
        page = ok(server.authed(session, "GET", path))
        for event in page["chunk"]:
            found.append(event["event_id"])
            if event["event_id"] == since:
                return list(reversed(found))
        assert page.get("end") and page["chunk"], (since, found)
        token = quote(page["end"])
    raise AssertionError(f"{since} not reached: {found}")


def current_state(server: ClientServer, session: Session, room_id: str) -> dict[str, Any]:
    """Name, topic and memberships of the room, as the user's initial /sync gives them."""
    sync_filter = quote('{"room": {"timeline": {"limit": 100}}}')
    response = ok(server.authed(session, "GET", f"{CLIENT}/sync?timeout=0&filter={sync_filter}"))
    room = response["rooms"]["join"][room_id]
    state: dict[tuple[str, str], Any] = {}
    for event in [*room["state"]["events"], *room["timeline"]["events"]]:
        if "state_key" in event:
            state[(event["type"], event["state_key"])] = event["content"]
    return {
        "name": state[("m.room.name", "")].get("name"),
        "topic": state[("m.room.topic", "")].get("topic"),
        "members": {
            key: content["membership"]
            for (kind, key), content in state.items()
            if kind == "m.room.member"
        },
    }


@dataclass
class Rooms:
    on_a: str = ""
    on_synapse: str = ""
    marker_a: str = ""
    marker_synapse: str = ""
    users: dict[str, Session] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rooms() -> Rooms:
    return Rooms()


def test_a_conversation_across_four_servers_reads_the_same_everywhere(
    servers: Servers, rooms: Rooms
) -> None:
    a, b, c, syn = servers.a, servers.b, servers.c, servers.synapse
    alice, bob, cat, sam = (
        register(a, "alice"),
        register(b, "bob"),
        register(c, "cat"),
        register_on_synapse(syn, "sam"),
    )
    dan, eve, gil, fay = (
        register(b, "dan"),
        register(c, "eve"),
        register_on_synapse(syn, "gil"),
        register(c, "fay"),
    )
    rooms.users.update(alice=alice, cat=cat)

    # -- a room on A, joined from B, C and Synapse ------------------------------------------
    body = {"name": "Four servers", "topic": "first", "preset": "public_chat"}
    room = ok(a.authed(alice, "POST", CLIENT + "/createRoom", {**body, "initial_state": [SHARED]}))
    room_id = rooms.on_a = room["room_id"]
    for server, user in ((b, bob), (c, cat), (syn, sam), (b, dan), (c, eve), (syn, gil)):
        join(server, user, room_id, a.server_name)
    for name, reader in zip("abcs", (alice, bob, cat, sam), strict=True):
        servers.readers[f"{name}:{room_id}"] = reader
    # the joins are everywhere before the conversation starts
    everywhere(servers, room_id, membership_event(a, alice, room_id, gil.user_id, "join"))
    rooms.marker_a = say(a, alice, room_id, "the conversation starts")
    everywhere(servers, room_id, rooms.marker_a)

    steps = [
        lambda: say(b, bob, room_id, "hello from B"),
        lambda: say(c, cat, room_id, "hello from C"),
        lambda: say(syn, sam, room_id, "hello from Synapse"),
        lambda: say(syn, gil, room_id, "a message to redact"),
    ]
    last = ""
    for step in steps:
        last = step()
        everywhere(servers, room_id, last)
    # A redacts Synapse's message
    path = f"{CLIENT}/rooms/{quote(room_id)}/redact/{quote(last)}/r{secrets.token_hex(4)}"
    everywhere(servers, room_id, ok(a.authed(alice, "PUT", path, {"reason": "spam"}))["event_id"])
    # power levels: bob (of B) becomes a moderator, then changes the topic and bans eve (of C)
    levels = get_state(a, alice, room_id, "m.room.power_levels")
    levels["users"][bob.user_id] = 50
    everywhere(servers, room_id, put_state(a, alice, room_id, "m.room.power_levels", levels))
    everywhere(servers, room_id, put_state(b, bob, room_id, "m.room.topic", {"topic": "second"}))
    everywhere(servers, room_id, put_state(a, alice, room_id, "m.room.name", {"name": "Renamed"}))
    act(b, bob, room_id, "ban", eve.user_id)
    everywhere(servers, room_id, membership_event(b, bob, room_id, eve.user_id, "ban"))
    # A kicks dan (of B); gil (of Synapse) leaves
    act(a, alice, room_id, "kick", dan.user_id)
    everywhere(servers, room_id, membership_event(a, alice, room_id, dan.user_id, "leave"))
    ok(syn.authed(gil, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", {}))
    everywhere(servers, room_id, membership_event(syn, sam, room_id, gil.user_id, "leave"))
    # knocking: fay (of C) knocks, alice lets her in, she joins
    rules = {"join_rule": "knock"}
    everywhere(servers, room_id, put_state(a, alice, room_id, "m.room.join_rules", rules))
    path = f"{CLIENT}/knock/{quote(room_id)}?server_name={quote(a.server_name)}"
    ok(c.authed(fay, "POST", path, {"reason": "let me in"}))
    everywhere(servers, room_id, membership_event(c, cat, room_id, fay.user_id, "knock"))
    act(a, alice, room_id, "invite", fay.user_id)
    everywhere(servers, room_id, membership_event(a, alice, room_id, fay.user_id, "invite"))
    sync_until(c, fay, in_section("invite", room_id))
    join(c, fay, room_id, a.server_name)
    everywhere(servers, room_id, membership_event(c, fay, room_id, fay.user_id, "join"))
    everywhere(servers, room_id, say(c, fay, room_id, "thanks for letting me in"))

    # -- a room on Synapse, joined from A and B ---------------------------------------------
    body = {"name": "Synapse's room", "topic": "theirs", "preset": "public_chat"}
    room = ok(syn.authed(sam, "POST", CLIENT + "/createRoom", {**body, "initial_state": [SHARED]}))
    other = rooms.on_synapse = room["room_id"]
    join(a, alice, other, syn.server_name)
    join(b, bob, other, syn.server_name)
    for name, reader in (("a", alice), ("b", bob), ("s", sam)):
        servers.readers[f"{name}:{other}"] = reader
    everywhere(servers, other, membership_event(syn, sam, other, bob.user_id, "join"))
    rooms.marker_synapse = say(syn, sam, other, "welcome to Synapse's room")
    everywhere(servers, other, rooms.marker_synapse)
    everywhere(servers, other, say(a, alice, other, "hello from A"))
    everywhere(servers, other, say(b, bob, other, "hello from B"))
    everywhere(servers, other, put_state(syn, sam, other, "m.room.topic", {"topic": "changed"}))
    act(syn, sam, other, "kick", bob.user_id)
    everywhere(servers, other, membership_event(syn, sam, other, bob.user_id, "leave"))
    # B (bob kicked) no longer reads the room from here on
    servers.readers.pop(f"b:{other}")
    everywhere(servers, other, say(a, alice, other, "bob is gone"))

    # -- every server reads the same ---------------------------------------------------------
    readers = {"a": alice, "b": bob, "c": cat, "s": sam}
    ranked = dict(zip("abcs", servers.all(), strict=True))
    lists = {name: history(ranked[name], readers[name], room_id, rooms.marker_a) for name in "abcs"}
    assert len(lists["a"]) == 17, lists["a"]
    for name in "bcs":
        assert lists[name] == lists["a"], name
    states = {name: current_state(ranked[name], readers[name], room_id) for name in "abcs"}
    assert states["a"]["name"] == "Renamed" and states["a"]["topic"] == "second"
    assert states["a"]["members"] == {
        alice.user_id: "join",
        bob.user_id: "join",
        cat.user_id: "join",
        sam.user_id: "join",
        dan.user_id: "leave",
        eve.user_id: "ban",
        gil.user_id: "leave",
        fay.user_id: "join",
    }
    for name in "bcs":
        assert states[name] == states["a"], name

    lists = {
        name: history(ranked[name], readers[name], other, rooms.marker_synapse) for name in "as"
    }
    assert len(lists["s"]) == 6, lists["s"]
    assert lists["a"] == lists["s"]
    states = {name: current_state(ranked[name], readers[name], other) for name in "as"}
    assert states["s"]["topic"] == "changed"
    assert states["s"]["members"][bob.user_id] == "leave"
    assert states["a"] == states["s"]


def test_a_restarted_server_catches_up_on_what_it_missed(servers: Servers, rooms: Rooms) -> None:
    assert rooms.on_a, "needs the conversation of the test before"
    a = servers.a
    alice, cat = rooms.users["alice"], rooms.users["cat"]
    room_id = rooms.on_a
    assert servers.c.stop() == 0, servers.c.log()[-6000:]
    missed = [say(a, alice, room_id, f"while C was down {n}") for n in range(3)]
    servers.c = restart(servers.c)
    sync_until(servers.c, cat, has_message(room_id, "while C was down 2"), timeout=60)
    seen = history(servers.c, cat, room_id, rooms.marker_a)
    assert seen[-3:] == missed
    assert seen == history(a, alice, room_id, rooms.marker_a)
