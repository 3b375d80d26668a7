"""`push: {enabled: false}` over real HTTP on both engines: rules are still served, but
no notifications are worked out, so there are no counts and nothing to push."""

from __future__ import annotations

import time

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, authed
from tests.integration.test_push import (
    RULES,
    create_room,
    fresh_user,
    notifications,
    room_counts,
    send,
    text,
)

server = module_server(
    push={"enabled": False},
    caches={"sync_response_cache_duration": 0},
    **REGISTRATION_CONFIG,
)


def test_no_notifications_or_counts_when_push_is_off(server: RunningServer) -> None:
    alice, bob = fresh_user(server, "alice"), fresh_user(server, "bob")
    room_id = create_room(server, alice, bob)
    send(server, alice, room_id, text("hello", **{"m.mentions": {"user_ids": [bob.user_id]}}))
    time.sleep(0.5)
    assert notifications(server, bob)["notifications"] == []
    counts, _ = room_counts(server, bob, room_id)
    assert counts == {"notification_count": 0, "highlight_count": 0}
    # the rules themselves are still there to read and change
    assert authed(bob, "GET", server.url + RULES + "/").status == 200
