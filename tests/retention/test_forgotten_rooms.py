"""forgotten_room_retention_period over real HTTP on both engines (2s here, checked every
second): a room every local user left and forgot is purged from the database, rows and
all, and the admin API no longer knows it; a room a local user is still in stays."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.services.retention import forgotten_check_period_ms
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    make_admin,
    register,
    send_text,
)
from tests.retention.helpers import message_bodies, stored_event_ids

server = module_server(**REGISTRATION_CONFIG, forgotten_room_retention_period="2s")


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "roomadmin")


def leave_and_forget(server: RunningServer, who: Session, room_id: str) -> None:
    for action in ("leave", "forget"):
        url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/{action}"
        reply = authed(who, "POST", url, {})
        assert reply.status == 200, reply.body


def admin_room_status(server: RunningServer, admin: Session, room_id: str) -> int:
    return authed(admin, "GET", f"{server.url}/_synapse/admin/v1/rooms/{quote(room_id)}").status


def test_the_check_period_follows_short_periods() -> None:
    assert forgotten_check_period_ms(28 * 86_400_000) == 3_600_000
    assert forgotten_check_period_ms(60_000) == 15_000
    assert forgotten_check_period_ms(10) == 1000


def test_a_room_everyone_here_forgot_is_purged(
    server: RunningServer, admin: Session, module_database: dict[str, Any]
) -> None:
    alice = register(server.url, "alice")
    bob = register(server.url, "bob")
    forgotten = create_room(server.url, alice, preset="public_chat", name="Forgotten")
    kept = create_room(server.url, alice, preset="public_chat", name="Kept")
    for room_id in (forgotten, kept):
        assert authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {}).status == 200
        send_text(server.url, alice, room_id, "hello")
    leave_and_forget(server, alice, forgotten)
    leave_and_forget(server, bob, forgotten)
    # bob stays in the other room, so it stays whatever alice does
    leave_and_forget(server, alice, kept)
    left = time.monotonic()
    assert stored_event_ids(module_database, forgotten)
    assert admin_room_status(server, admin, forgotten) == 200

    deadline = left + 15
    while stored_event_ids(module_database, forgotten):
        assert time.monotonic() < deadline, "the forgotten room was not purged"
        time.sleep(0.2)
    assert time.monotonic() - left >= 2.0 - 0.2
    assert admin_room_status(server, admin, forgotten) == 404

    assert admin_room_status(server, admin, kept) == 200
    assert message_bodies(server, bob, kept) == ["hello"]
