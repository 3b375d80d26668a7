"""send_federation: false over TLS: a server that still serves other servers (a fake one
joins its room through send_join) but sends them no transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, start_federating_server
from tests.federation.test_outbound_queue import new_room, say, transactions


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


@pytest.fixture(scope="module")
def silent_server(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    server = start_federating_server(
        tmp_path_factory.mktemp("silent"), sqlite_section, test_ca, send_federation=False
    )
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_nothing_is_sent_with_send_federation_off(
    silent_server: FederatingServer, fake: FakeServer
) -> None:
    room = new_room(silent_server, fake)
    say(silent_server, room.alice, room.room_id, "kept at home")
    # the fake's own requests are served all the same
    reply = fake.request(silent_server, "GET", "/_matrix/federation/v1/version")
    assert reply.status == 200, reply.body
    time.sleep(1.5)
    assert transactions(fake) == []
    assert "Not used by Ranvier" not in silent_server.log()
