"""Ranvier's outbound transactions over TLS, on both engines: a fake remote server
(fake_server.py) joins a local room through make_join and send_join, and what local users
send reaches it in PUT /send transactions signed by Ranvier; a receiver that was down is
caught up with the newest event of the room once it is reachable again (the admin's
reset_connection, or a signed request from it, ends the backoff); a 502 is retried within
the attempt with the same transaction ID (federation.max_long_retries); messages reach two
servers at once, a second Ranvier among them, whose own queue sends its user's answer."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.request_auth import parse_authorization_header, request_json
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.protocol.server_keys import parse_key_response
from ranvier.protocol.signing import verify_event_signatures, verify_json
from tests.federation.conftest import ServerPair, federating_pair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.test_inbound_events import Room, join
from tests.federation.test_request_authentication import admin_of
from tests.integration.matrix import CLIENT, Session

SEND = "/_matrix/federation/v1/send/"
DESTINATIONS = "/_synapse/admin/v1/federation/destinations"
ENGINES = ["sqlite", "postgres"]

# a failed transaction is retried once within the attempt, 0.2 s later; after that the
# destination is backed off from for an hour, so only a wake-up brings it back in a test
two_servers = federating_pair(
    federation={
        "max_long_retries": 1,
        "max_long_retry_delay": 200,
        "max_short_retries": 0,
        "destination_min_retry_interval": "1h",
    }
)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def pick(pair: ServerPair, engine: str) -> FederatingServer:
    return pair.first if engine == "sqlite" else pair.second


def new_room(server: FederatingServer, fake: FakeServer) -> Room:
    """A public room of a new local user, which the fake's user has joined."""
    alice = register(server, f"alice{secrets.token_hex(3)}")
    reply = server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id = reply.json()["room_id"]
    create = server.authed(alice, "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.create")
    room = Room(server, alice, room_id, KNOWN_ROOM_VERSIONS[create.json()["room_version"]])
    join(fake, room, fake.user(f"mallory{secrets.token_hex(2)}"))
    return room


def say(server: FederatingServer, user: Session, room_id: str, body: str) -> str:
    reply = server.authed(
        user,
        "PUT",
        f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(6)}",
        {"msgtype": "m.text", "body": body},
    )
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def transactions(fake: FakeServer, since: int = 0) -> list[ReceivedRequest]:
    return [r for r in fake.received[since:] if r.method == "PUT" and r.path.startswith(SEND)]


def bodies(transaction: ReceivedRequest) -> list[str]:
    return [pdu["content"].get("body") for pdu in transaction.body["pdus"]]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def wait_for_body(fake: FakeServer, body: str, since: int = 0) -> ReceivedRequest:
    def found() -> ReceivedRequest | None:
        for transaction in transactions(fake, since):
            if body in bodies(transaction):
                return transaction
        return None

    wait_until(lambda: found() is not None, f"a transaction with {body!r}")
    result = found()
    assert result is not None
    return result


_admins: dict[str, Session] = {}


def destination(server: FederatingServer, name: str) -> dict[str, Any]:
    if server.server_name not in _admins:
        _admins[server.server_name] = admin_of(server, f"admin{secrets.token_hex(3)}")
    reply = server.authed(_admins[server.server_name], "GET", f"{DESTINATIONS}/{quote(name)}")
    assert reply.status == 200, reply.body
    row: dict[str, Any] = reply.json()
    return row


@pytest.mark.parametrize("engine", ENGINES)
def test_a_local_message_reaches_the_joined_server_signed(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    server = pick(two_servers, engine)
    room = new_room(server, fake)
    hello = f"hello over there ({engine})"
    event_id = say(server, room.alice, room.room_id, hello)

    transaction = wait_for_body(fake, hello)
    assert transaction.body["origin"] == server.server_name
    assert isinstance(transaction.body["origin_server_ts"], int)
    (pdu,) = [p for p in transaction.body["pdus"] if p["content"].get("body") == hello]
    assert pdu["room_id"] == room.room_id and pdu["sender"] == room.alice.user_id
    # the fake's own join came from it: never sent back
    assert all(
        p["sender"] == room.alice.user_id
        for t in transactions(fake)
        for p in t.body["pdus"]
        if p["room_id"] == room.room_id
    )
    # signed by Ranvier, for the fake: the request and the event
    keys = parse_key_response(
        server.request("GET", "/_matrix/key/v2/server").json(),
        server.server_name,
        received_ts=int(time.time() * 1000),
    )
    header = parse_authorization_header(transaction.authorization or "")
    assert (header.origin, header.destination) == (server.server_name, fake.server_name)
    signed = request_json(
        "PUT", transaction.path, header.origin, fake.server_name, transaction.body
    )
    signed["signatures"] = {header.origin: {header.key: header.sig}}
    verify_json(signed, server.server_name, keys.verify_keys)
    verify_event_signatures(pdu, room.version, {server.server_name: dict(keys.verify_keys)})
    reply = server.authed(room.alice, "GET", f"{CLIENT}/rooms/{room.room_id}/event/{event_id}")
    assert reply.json()["content"]["body"] == hello

    # the admin API shows how far the fake was delivered, and the room shared with it
    wait_until(
        lambda: (destination(server, fake.server_name)["last_successful_stream_ordering"] or 0) > 0,
        "last_successful_stream_ordering",
    )
    row = destination(server, fake.server_name)
    assert row["retry_interval"] == 0 and row["failure_ts"] is None
    reply = server.authed(
        _admins[server.server_name], "GET", f"{DESTINATIONS}/{quote(fake.server_name)}/rooms"
    )
    assert room.room_id in [r["room_id"] for r in reply.json()["rooms"]]


@pytest.mark.parametrize("wake", ["reset_connection", "signed request"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_receiver_that_was_down_is_caught_up_with_the_newest_event(
    two_servers: ServerPair, fake: FakeServer, engine: str, wake: str
) -> None:
    server = pick(two_servers, engine)
    room = new_room(server, fake)
    tag = f"({engine}, {wake})"
    start = len(fake.received)
    say(server, room.alice, room.room_id, f"before the outage {tag}")
    wait_for_body(fake, f"before the outage {tag}", start)

    fake.stop()
    try:
        for n in range(3):
            say(server, room.alice, room.room_id, f"while down {n} {tag}")
        wait_until(
            lambda: destination(server, fake.server_name)["retry_interval"] > 0,
            "the backoff after the failure",
        )
    finally:
        fake.start()
    since = len(fake.received)
    # backing off for an hour: the queue does not knock on the restarted server
    time.sleep(1)
    assert transactions(fake, since) == []

    if wake == "reset_connection":
        reply = server.authed(
            _admins[server.server_name],
            "POST",
            f"{DESTINATIONS}/{quote(fake.server_name)}/reset_connection",
            {},
        )
        assert reply.status == 200, reply.body
    else:
        # a signed request from the fake: it is up again
        reply = fake.request(
            server,
            "GET",
            f"/_matrix/federation/v1/query/profile?user_id={quote(room.alice.user_id)}",
        )
        assert reply.status == 200, reply.body

    newest = wait_for_body(fake, f"while down 2 {tag}", since)
    sent = [body for t in transactions(fake, since) for body in bodies(t)]
    # the transaction that failed is sent again, then only the newest of the room: the
    # fake would fetch the one between with get_missing_events
    assert f"while down 1 {tag}" not in sent
    assert bodies(newest) == [f"while down 2 {tag}"]
    assert sent[-1] == f"while down 2 {tag}"
    row = destination(server, fake.server_name)
    assert row["retry_interval"] == 0

    # back on the live queue
    say(server, room.alice, room.room_id, f"after the outage {tag}")
    assert bodies(wait_for_body(fake, f"after the outage {tag}", since)) == [
        f"after the outage {tag}"
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_502_is_retried_with_the_same_transaction_id(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    server = pick(two_servers, engine)
    room = new_room(server, fake)
    marker = f"flaky {engine}"
    failed: list[str] = []

    def flaky(received: ReceivedRequest) -> tuple[int, Any]:
        if marker in bodies(received) and not failed:
            failed.append(received.path)
            return 502, {"errcode": "M_UNKNOWN", "error": "try again"}
        return 200, {"pdus": {}}

    fake.route("PUT", SEND, flaky)
    since = len(fake.received)
    say(server, room.alice, room.room_id, marker)
    wait_until(
        lambda: len([t for t in transactions(fake, since) if marker in bodies(t)]) == 2, "the retry"
    )
    first, second = [t for t in transactions(fake, since) if marker in bodies(t)]
    assert first.path == second.path == failed[0]
    assert first.body == second.body
    # answered in the end: no backoff
    assert destination(server, fake.server_name)["retry_interval"] == 0


def test_messages_reach_two_servers(two_servers: ServerPair, fake: FakeServer) -> None:
    here, there = two_servers.first, two_servers.second
    room = new_room(here, fake)
    bob = register(there, f"bob{secrets.token_hex(3)}")
    reply = there.authed(
        bob, "POST", f"{CLIENT}/join/{quote(room.room_id)}?server_name={here.server_name}"
    )
    assert reply.status == 200, reply.body
    since = len(fake.received)

    say(here, room.alice, room.room_id, "to both")
    wait_for_body(fake, "to both", since)

    def bob_sees(body: str) -> bool:
        reply = there.authed(bob, "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b")
        return body in [e["content"].get("body") for e in reply.json()["chunk"]]

    wait_until(lambda: bob_sees("to both"), "the message on the second server")

    # the second server's queue sends its user's answer to both other servers
    say(there, bob, room.room_id, "answer from bob")
    answer = wait_for_body(fake, "answer from bob", since)
    assert answer.body["origin"] == there.server_name

    def alice_sees(body: str) -> bool:
        reply = here.authed(
            room.alice, "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b"
        )
        return body in [e["content"].get("body") for e in reply.json()["chunk"]]

    wait_until(lambda: alice_sees("answer from bob"), "bob's answer on the first server")
