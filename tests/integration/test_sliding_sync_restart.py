"""A sliding sync `pos` survives a server restart, on both engines: positions and what
each connection was sent are stored, so a client continues its connection."""

from __future__ import annotations

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
