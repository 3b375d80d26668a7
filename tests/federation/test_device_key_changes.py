"""A device's identity keys uploaded again with other keys replace them (as Synapse does;
spec: /keys/upload publishes the device's keys and forbids nothing), on both engines: a
fake server sharing the room hears of each change as an m.device_list_update whose prev_id
is that user's previous change, also when another user's change came between (SyTest
50federation/40devicelists.pl "Local device key changes get to remote servers" and "... with
correct prev_id"), and a room-mate's /keys/query shows the new keys.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import ok
from tests.integration.matrix import CLIENT, Session

SEND = "/_matrix/federation/v1/send/"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def device_keys(session: Session, identity: str) -> dict[str, Any]:
    """Keys as SyTest uploads them: unsigned, any string for a key."""
    return {
        "user_id": session.user_id,
        "device_id": session.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{session.device_id}": identity},
        "signatures": {},
    }


def upload(server: FederatingServer, session: Session, identity: str) -> None:
    body = {"device_keys": device_keys(session, identity)}
    ok(server.authed(session, "POST", CLIENT + "/keys/upload", body))


def next_update(fake: FakeServer, since: int, user_id: str) -> tuple[dict[str, Any], int]:
    """The first m.device_list_update about `user_id` in a transaction received after
    `since`, and where in fake.received that transaction is."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        received = list(fake.received)
        for index in range(since, len(received)):
            request = received[index]
            if request.method != "PUT" or not request.path.startswith(SEND):
                continue
            for edu in request.body.get("edus", []):
                content = edu.get("content", {})
                if (
                    edu.get("edu_type") == "m.device_list_update"
                    and content.get("user_id") == user_id
                ):
                    return content, index + 1
        time.sleep(0.05)
    raise AssertionError(f"no m.device_list_update about {user_id}")


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_new_identity_keys_replace_the_old_and_chain_by_prev_id(
    two_servers: ServerPair, fake: FakeServer, engine: str
) -> None:
    server = two_servers.first if engine == "sqlite" else two_servers.second
    alice = register(server, f"alice{secrets.token_hex(3)}")
    bob = register(server, f"bob{secrets.token_hex(3)}")
    room_id = ok(server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"}))[
        "room_id"
    ]
    ok(server.authed(bob, "POST", f"{CLIENT}/join/{room_id}", {}))
    fake.join(server, room_id, fake.user(f"walrus{secrets.token_hex(3)}"))

    since = len(fake.received)
    upload(server, alice, "base64publicidentitykey")
    first, since = next_update(fake, since, alice.user_id)
    assert first["device_id"] == alice.device_id
    assert first["keys"] == device_keys(alice, "base64publicidentitykey")

    # another user's change between alice's two
    upload(server, bob, "bobskey")
    bobs, _ = next_update(fake, since, bob.user_id)
    assert bobs["device_id"] == bob.device_id

    upload(server, alice, "newkey")
    second, _ = next_update(fake, since, alice.user_id)
    assert second["device_id"] == alice.device_id
    assert second["prev_id"] == [first["stream_id"]]
    assert second["stream_id"] > bobs["stream_id"] > first["stream_id"]
    assert second["keys"] == device_keys(alice, "newkey")

    # what a room-mate's client sees
    answer = ok(
        server.authed(bob, "POST", CLIENT + "/keys/query", {"device_keys": {alice.user_id: []}})
    )
    shown = answer["device_keys"][alice.user_id][alice.device_id]
    assert shown["keys"] == {f"ed25519:{alice.device_id}": "newkey"}
    # and the same keys again change nothing: no update goes out
    mark = len(fake.received)
    upload(server, alice, "newkey")
    upload(server, bob, "bobskey2")
    next_update(fake, mark, bob.user_id)
    assert all(
        edu.get("content", {}).get("user_id") != alice.user_id
        for request in list(fake.received)[mark:]
        if request.method == "PUT" and request.path.startswith(SEND)
        for edu in request.body.get("edus", [])
        if edu.get("edu_type") == "m.device_list_update"
    )
