"""A sliding sync `pos` survives a server restart, on both engines: positions and what
each connection was sent are stored, so a client continues its connection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import restartable_config
from tests.integration.homeserver import start_server
from tests.integration.matrix import Session, register
from tests.integration.test_sliding_sync import one_list, sliding
from tests.integration.test_sync import create_room, say, texts

config = restartable_config()


def test_a_pos_stays_valid_across_a_restart(config: tuple[Path, int]) -> None:
    path, port = config
    server = start_server(path, port)
    try:
        alice = register(server.url, "alice")
        quiet_room = create_room(server, alice)
        busy_room = create_room(server, alice)
        say(server, alice, busy_room, "before the restart")
        say(server, alice, quiet_room, "quiet")
        body = sliding(server, alice, {"conn_id": "c", **one_list(0, 9)})
        assert set(body["rooms"]) == {quiet_room, busy_room}
        pos = body["pos"]
    finally:
        assert server.stop() == 0, server.log()
    server = start_server(path, port)
    try:
        again = Session(alice.user_id, alice.access_token, alice.device_id)
        say(server, again, busy_room, "after the restart")
        body = sliding(server, again, {"conn_id": "c", **one_list(0, 9)}, pos=pos)
        # only the room with news, and only the news: the connection's record survived
        assert list(body["rooms"]) == [busy_room]
        room = body["rooms"][busy_room]
        assert "initial" not in room
        assert texts(room["timeline"]) == ["after the restart"]
    finally:
        assert server.stop() == 0, server.log()


def test_the_upgrade_stamps_the_rooms_that_exist(config: tuple[Path, int]) -> None:
    """Rooms made before revision 0025 are sorted by their newest message once the
    server is upgraded: the migration fills their bump stamps from the events."""
    path, port = config
    server = start_server(path, port)
    try:
        bob = register(server.url, "bob")
        rooms = [create_room(server, bob) for _ in range(3)]
        # the oldest room gets the newest message
        for room_id in [*rooms[1:], rooms[0]]:
            say(server, bob, room_id, "hello")
    finally:
        assert server.stop() == 0, server.log()
    downgrade = ["db", "downgrade", "-c", str(path), "0024_appservices", "--yes"]
    down = subprocess.run(
        [sys.executable, "-m", "ranvier.cli", *downgrade],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert down.returncode == 0, down.stderr
    server = start_server(path, port)
    try:
        again = Session(bob.user_id, bob.access_token, bob.device_id)
        body = sliding(server, again, one_list(0, 0))
        assert list(body["rooms"]) == [rooms[0]]
    finally:
        assert server.stop() == 0, server.log()
