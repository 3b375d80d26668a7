"""Sync tokens survive a server restart, on both engines: positions come from the
database, so a client continues where it left off."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.integration.conftest import restartable_config
from tests.integration.homeserver import start_server
from tests.integration.matrix import Session, authed, login, register
from tests.integration.test_sync import create_room, joined_room, say, sync, texts

config = restartable_config()


def test_tokens_survive_a_restart(config: tuple[Path, int]) -> None:
    path, port = config
    server = start_server(path, port)
    try:
        alice = register(server.url, "alice")
        room_id = create_room(server, alice)
        say(server, alice, room_id, "before the restart")
        token = sync(server, alice)["next_batch"]
        say(server, alice, room_id, "not yet seen")
        set_account_data(server, alice, "org.example.before", {"made": "before"})
    finally:
        assert server.stop() == 0, server.log()
    server = start_server(path, port)
    try:
        again = Session(alice.user_id, alice.access_token, alice.device_id)
        body = sync(server, again, since=token)
        assert texts(joined_room(body, room_id)["timeline"]["events"]) == ["not yet seen"]
        assert account_data(body) == {"org.example.before": {"made": "before"}}
        after = body["next_batch"]
        body = sync(server, again, since=after)
        assert account_data(body) == {}
        say(server, again, room_id, "after the restart")
        set_account_data(server, again, "org.example.after", {"made": "after"})
        body = sync(server, again, since=after)
        assert texts(joined_room(body, room_id)["timeline"]["events"]) == ["after the restart"]
        assert account_data(body) == {"org.example.after": {"made": "after"}}
        # a second device's initial sync agrees
        other = login(server.url, "alice")
        timeline = joined_room(sync(server, other), room_id)["timeline"]["events"]
        assert texts(timeline)[-3:] == ["before the restart", "not yet seen", "after the restart"]
        assert authed(other, "GET", server.url + "/_matrix/client/v3/account/whoami").status == 200
    finally:
        assert server.stop() == 0, server.log()


def set_account_data(server: Any, session: Session, data_type: str, content: Any) -> None:
    url = f"{server.url}/_matrix/client/v3/user/{session.user_id}/account_data/{data_type}"
    assert authed(session, "PUT", url, content).status == 200


def account_data(body: dict[str, Any]) -> dict[str, Any]:
    return {e["type"]: e["content"] for e in body.get("account_data", {}).get("events", [])}


def test_repeated_requests_get_the_same_answer(config: tuple[Path, int]) -> None:
    # caches.sync_response_cache_duration (2 minutes by default), as Synapse: a client
    # retrying a request whose answer it lost gets that answer again
    path, port = config
    server = start_server(path, port)
    try:
        alice = register(server.url, "carol")
        room_id = create_room(server, alice)
        token = sync(server, alice)["next_batch"]
        say(server, alice, room_id, "one")
        first = sync(server, alice, since=token)
        say(server, alice, room_id, "two")
        assert sync(server, alice, since=token) == first
        # a new token sees the news
        body = sync(server, alice, since=first["next_batch"])
        assert texts(joined_room(body, room_id)["timeline"]["events"]) == ["two"]
        # empty answers are not kept
        empty = sync(server, alice, since=body["next_batch"])
        assert "rooms" not in empty
        say(server, alice, room_id, "three")
        body = sync(server, alice, since=body["next_batch"])
        assert texts(joined_room(body, room_id)["timeline"]["events"]) == ["three"]
    finally:
        assert server.stop() == 0, server.log()


def test_a_send_retried_after_a_restart_answers_with_the_first_event(
    config: tuple[Path, int],
) -> None:
    path, port = config
    server = start_server(path, port)
    try:
        alice = register(server.url, "retrier")
        kept = create_room(server, alice)
        left = create_room(server, alice)
        first = send_txn(server, alice, kept, "kept-1", "first try")
        gone = send_txn(server, alice, left, "left-1", "before leaving")
        leave = authed(alice, "POST", f"{server.url}/_matrix/client/v3/rooms/{left}/leave", {})
        assert leave.status == 200, leave.body
    finally:
        assert server.stop() == 0, server.log()
    server = start_server(path, port)
    try:
        again = Session(alice.user_id, alice.access_token, alice.device_id)
        # the retry and new sends in one room at once: the new ones still go through
        with ThreadPoolExecutor(max_workers=4) as pool:
            retried = pool.submit(send_txn, server, again, kept, "kept-1", "first try")
            fresh = [
                pool.submit(send_txn, server, again, kept, f"kept-new-{i}", f"new {i}")
                for i in range(3)
            ]
            assert retried.result() == first
            new_ids = [future.result() for future in fresh]
        assert len(set(new_ids)) == 3 and first not in new_ids
        # a retry is answered with its event even where the same send is now refused
        assert send_txn(server, again, left, "left-1", "before leaving") == gone
        timeline = joined_room(sync(server, again), kept)["timeline"]["events"]
        assert texts(timeline).count("first try") == 1
    finally:
        assert server.stop() == 0, server.log()


def send_txn(server: Any, session: Session, room_id: str, txn_id: str, text: str) -> str:
    url = f"{server.url}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn_id}"
    reply = authed(session, "PUT", url, {"msgtype": "m.text", "body": text})
    assert reply.status == 200, reply.body
    return str(reply.json()["event_id"])
