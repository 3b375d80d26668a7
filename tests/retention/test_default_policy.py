"""The default retention policy over real HTTP on both engines: rooms without an
`m.room.retention` event, and rooms whose event leaves max_lifetime out, lose their old
messages under the server's default_policy (2s here), while a room whose own policy keeps
messages longer keeps them, visible and stored. The purge job covers max_lifetimes up to
an hour and runs every second."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    register,
    send_text,
)
from tests.retention.helpers import message_bodies, stored_event_ids

DAY_MS = 86_400_000

server = module_server(
    **REGISTRATION_CONFIG,
    retention={
        "enabled": True,
        "default_policy": {"max_lifetime": "2s"},
        "purge_jobs": [{"longest_max_lifetime": "1h", "interval": "1s"}],
    },
)


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


def test_the_default_policy_purges_rooms_without_one_of_their_own(
    server: RunningServer, alice: Session, module_database: dict[str, Any]
) -> None:
    plain = create_room(server.url, alice, name="Default")
    partial = create_room(server.url, alice, name="Partial policy")
    long_lived = create_room(server.url, alice, name="A day")
    state = f"{server.url}{CLIENT}/rooms/{{}}/state/m.room.retention/"
    # a policy without max_lifetime takes the default's
    assert authed(alice, "PUT", state.format(quote(partial)), {"min_lifetime": 0}).status == 200
    day = {"max_lifetime": DAY_MS}
    assert authed(alice, "PUT", state.format(quote(long_lived)), day).status == 200
    sent = {
        room_id: [send_text(server.url, alice, room_id, f"m{i}") for i in range(3)]
        for room_id in (plain, partial, long_lived)
    }
    started = time.monotonic()

    for room_id in (plain, partial):
        deadline = started + 15
        # all but the latest message, which the room keeps to go on
        while set(sent[room_id][:-1]) & stored_event_ids(module_database, room_id):
            assert time.monotonic() < deadline, f"{room_id} was not purged"
            time.sleep(0.2)
        assert message_bodies(server, alice, room_id) == []
    assert time.monotonic() - started >= 2.0 - 0.2

    assert set(sent[long_lived]) <= stored_event_ids(module_database, long_lived)
    assert message_bodies(server, alice, long_lived) == ["m2", "m1", "m0"]
