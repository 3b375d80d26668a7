"""Pushers survive a restart, on both engines: a pusher whose gateway was failing resumes
after the restart and delivers what it had not delivered, then only new events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import restartable_config
from tests.integration.homeserver import start_server
from tests.integration.matrix import Session
from tests.integration.test_push import (
    Gateway,
    create_room,
    fresh_user,
    pusher_body,
    pushers_of,
    send,
    set_pusher,
    text,
)

config = restartable_config()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    running.start()
    yield running
    running.stop()


def test_pushers_resume_after_a_restart(config: tuple[Path, int], gateway: Gateway) -> None:
    path, port = config
    server = start_server(path, port)
    try:
        alice, bob = fresh_user(server, "alice"), fresh_user(server, "bob")
        room_id = create_room(server, alice, bob)
        assert set_pusher(server, bob, pusher_body(gateway.url, "restart-key")).status == 200
        # the gateway is down: the push is retried, never taken, until the server stops
        gateway.fail = 1_000
        gateway.received.clear()
        missed = send(server, alice, room_id, text("while the gateway was down"))
        assert gateway.wait_for(1)[0]["notification"]["event_id"] == missed
    finally:
        assert server.stop() == 0, server.log()
    gateway.fail = 0
    gateway.received.clear()
    server = start_server(path, port)
    try:
        again = Session(bob.user_id, bob.access_token, bob.device_id)
        assert [p["pushkey"] for p in pushers_of(server, again)] == ["restart-key"]
        (resumed,) = gateway.wait_for(1)
        assert resumed["notification"]["event_id"] == missed
        alice_again = Session(alice.user_id, alice.access_token, alice.device_id)
        later = send(server, alice_again, room_id, text("after the restart"))
        received = gateway.wait_for(2)
        assert [r["notification"]["event_id"] for r in received] == [missed, later]
    finally:
        assert server.stop() == 0, server.log()
