"""matrix-js-sdk's SlidingSync, a real client of simplified sliding sync (MSC4186), against
Ranvier: a room list of the two most recent of Alice's three rooms, each drawn with its name
and newest message, and Bob's message in the oldest room bringing it to the top.

tests/interop/js/sliding_sync.mjs runs the client in Node and prints what it showed after
each step as one JSON line; these tests assert on that. Node and the project in
tests/interop/js (`npm ci`, which `make test` runs) are required.
"""

from __future__ import annotations

import pytest

from tests.integration.homeserver import RunningServer
from tests.interop.node import Run, run_alice_and_bob

SCRIPT = "sliding_sync.mjs"
SCRIPT_TIMEOUT = 90.0
BODY = "Curiouser and curiouser: the oldest room speaks"


@pytest.fixture(scope="module")
def room_list(server: RunningServer) -> Run:
    return run_alice_and_bob(server, SCRIPT, BODY, SCRIPT_TIMEOUT)


def test_the_first_response_lists_the_two_most_recent_rooms(room_list: Run) -> None:
    first = room_list.result["first"]
    assert first["count"] == 3
    # the server sent the rooms in range 0-1 of the list ordered by recency, and no other
    assert first["sent"] == ["Middle", "Newest"]
    assert first["list"] == [
        {"name": "Newest", "last": "hello Newest"},
        {"name": "Middle", "last": "hello Middle"},
    ]
    assert first["sync_state"] in ("PREPARED", "SYNCING")


def test_a_new_message_brings_the_oldest_room_to_the_top(room_list: Run) -> None:
    after = room_list.result["after"]
    assert after["count"] == 3
    assert after["list"][0] == {"name": "Oldest", "last": BODY}
    assert after["list"][1:] == [
        {"name": "Newest", "last": "hello Newest"},
        {"name": "Middle", "last": "hello Middle"},
    ]
    assert after["sender"] == room_list.bob.user_id
