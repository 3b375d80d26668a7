"""The fake remote server itself: it serves its keys over TLS from the test CA, and a
Ranvier accepts the requests it signs (make_join of one of its users)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederationCA, https_request, register
from tests.integration.matrix import CLIENT


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def test_the_fake_serves_its_keys(fake: FakeServer, tmp_path: Path) -> None:
    reply = https_request(fake.ca, "GET", f"https://{fake.server_name}/_matrix/key/v2/server")
    assert reply.status == 200
    assert reply.json()["server_name"] == fake.server_name
    assert fake.signing_key.key_id in reply.json()["verify_keys"]


def test_ranvier_accepts_the_fakes_signed_requests(
    fake: FakeServer, two_servers: ServerPair
) -> None:
    for server in two_servers:
        alice = register(server, "alice")
        room = server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"})
        room_id = room.json()["room_id"]
        user = fake.user("mallory")
        reply = fake.request(
            server, "GET", f"/_matrix/federation/v1/make_join/{room_id}/{user}?ver=10&ver=11&ver=12"
        )
        assert reply.status == 200, reply.body
        template = reply.json()["event"]
        version = KNOWN_ROOM_VERSIONS[reply.json()["room_version"]]
        signed = fake.sign({**template, "origin": fake.server_name}, version)
        assert signed.event_id in fake.events
        # a forged origin is refused
        forged = fake.request(
            server,
            "GET",
            f"/_matrix/federation/v1/make_join/{room_id}/{user}?ver=10",
            origin="localhost:1",
        )
        assert forged.status == 401
