"""The `push` options away from their defaults, over real HTTP on both engines: pushes
without content and with the badge counting notifications. Push switched off is in
test_push_off.py (a server of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG
from tests.integration.test_push import (
    Gateway,
    create_room,
    fresh_user,
    pusher_body,
    send,
    set_pusher,
    text,
)


def _server(
    tmp_path_factory: pytest.TempPathFactory, database: dict[str, Any], push: dict[str, Any]
) -> Iterator[RunningServer]:
    port = free_port()
    config = write_test_config(
        tmp_path_factory.mktemp("hs"), database, port, push=push, **REGISTRATION_CONFIG
    )
    running = start_server(config, port)
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    yield from _server(
        tmp_path_factory,
        module_database,
        {"include_content": False, "group_unread_count_by_room": False},
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    running.start()
    yield running
    running.stop()


def test_pushes_without_content_and_badge_counting_notifications(
    server: RunningServer, gateway: Gateway
) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    assert set_pusher(server, bob, pusher_body(gateway.url, "switches")).status == 200
    gateway.received.clear()
    send(server, alice, room_id, text("one"))
    second = send(server, alice, room_id, text("two"))
    received = gateway.wait_for(2)
    notification = received[-1]["notification"]
    assert notification["event_id"] == second
    assert notification["sender"] == alice.user_id
    assert "content" not in notification
    # both messages are unread: 2 notifications, in one room (the invite's was read at
    # the join, as Synapse counts from it)
    assert notification["counts"] == {"unread": 2}
