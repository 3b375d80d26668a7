"""JSON stored before the input limits held (by an older server) never breaks reading or
push for anybody, on both engines: what cannot be written back is served pruned, as a
redaction would leave it, and everything around it is served whole."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.config.loader import load_config
from ranvier.protocol import validation
from ranvier.requester import UserRequester
from ranvier.server import create_homeserver
from tests.integration.conftest import restartable_config
from tests.integration.homeserver import start_server
from tests.integration.matrix import Session, authed, register
from tests.integration.test_json_limits import nested_value
from tests.integration.test_push import Gateway, pusher_body, set_pusher

CLIENT = "/_matrix/client/v3"

POISON_DEPTH = 250
POISON = {"body": "poison", "deep": nested_value(POISON_DEPTH)}
# where the whole answer can still be written the event is served whole, else emptied
WHOLE_OR_PRUNED = (POISON, {})


config = restartable_config(caches={"sync_response_cache_duration": 0})


async def _store_as_an_older_server_would(
    config_path: Path, alice: Session, room_id: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Write what a server without the limits accepted: an event, account data and a
    to-device message nested POISON_DEPTH deep, each still storable."""
    monkeypatch.setattr(validation, "MAX_DEPTH", 10_000)
    homeserver = await create_homeserver(load_config(config_path))
    try:
        requester = UserRequester(alice.user_id, alice.device_id, False, False, None)
        event = await homeserver.rooms.sending.send_message(
            requester, room_id, "m.room.message", POISON, "poison-txn"
        )
        await homeserver.user_data.account_data.set_global(
            alice.user_id, alice.user_id, "com.example.poison", nested_value(POISON_DEPTH)
        )
        await homeserver.ephemeral.to_device.send(
            alice.user_id,
            alice.device_id,
            "com.example.poison",
            "poison-txn",
            {alice.user_id: {alice.device_id: nested_value(POISON_DEPTH)}},
        )
        return event.event_id
    finally:
        await homeserver.stop()


def test_json_stored_before_the_limits_never_breaks_reading_or_push(
    config: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, port = config
    gateway = Gateway()
    gateway.start()
    running = start_server(path, port)
    try:
        alice, bob = register(running.url, "alice"), register(running.url, "bob")
        created = authed(
            alice, "POST", running.url + CLIENT + "/createRoom", {"invite": [bob.user_id]}
        )
        assert created.status == 200, created.body
        room_id = created.json()["room_id"]
        assert authed(bob, "POST", f"{running.url}{CLIENT}/join/{quote(room_id)}", {}).status == 200
        assert set_pusher(running, bob, pusher_body(gateway.url, "poison-key")).status == 200
        # the invite notified nobody with a pusher yet; start counting from here
        bob_since = authed(bob, "GET", running.url + CLIENT + "/sync").json()["next_batch"]
    finally:
        assert running.stop() == 0, running.log()

    poison_id = asyncio.run(_store_as_an_older_server_would(path, alice, room_id, monkeypatch))

    running = start_server(path, port)
    try:
        room = f"{running.url}{CLIENT}/rooms/{quote(room_id)}"
        later = authed(alice, "PUT", f"{room}/send/m.room.message/later", {"body": "findme later"})
        assert later.status == 200, later.body
        later_id = later.json()["event_id"]

        def served(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            return {e["event_id"]: e["content"] for e in events}

        for reader, since in ((alice, None), (bob, None), (bob, bob_since)):
            query = "" if since is None else f"?since={since}"
            sync = authed(reader, "GET", running.url + CLIENT + "/sync" + query)
            assert sync.status == 200, sync.body
            timeline = sync.json()["rooms"]["join"][room_id]["timeline"]["events"]
            # served as a redaction would leave it, the rest of the room intact
            assert served(timeline)[poison_id] == {}
            assert served(timeline)[later_id] == {"body": "findme later"}
        alice_sync = authed(alice, "GET", running.url + CLIENT + "/sync").json()
        assert {"type": "com.example.poison", "content": {}} in alice_sync["account_data"]["events"]
        assert [m["type"] for m in alice_sync["to_device"]["events"]] == ["com.example.poison"]

        messages = authed(bob, "GET", f"{room}/messages?dir=b&limit=10")
        assert messages.status == 200, messages.body
        assert served(messages.json()["chunk"])[poison_id] in WHOLE_OR_PRUNED
        context = authed(bob, "GET", f"{room}/context/{later_id}")
        assert context.status == 200, context.body
        assert served(context.json()["events_before"])[poison_id] in WHOLE_OR_PRUNED
        assert authed(bob, "GET", f"{room}/context/{poison_id}").status == 200
        event = authed(bob, "GET", f"{room}/event/{poison_id}")
        assert event.status == 200, event.body
        assert event.json()["content"] in WHOLE_OR_PRUNED
        search = authed(
            bob,
            "POST",
            running.url + CLIENT + "/search",
            {
                "search_categories": {
                    "room_events": {"search_term": "findme", "event_context": {"before_limit": 3}}
                }
            },
        )
        assert search.status == 200, search.body
        notifications = authed(bob, "GET", running.url + CLIENT + "/notifications")
        assert notifications.status == 200, notifications.body
        assert poison_id in {n["event"]["event_id"] for n in notifications.json()["notifications"]}
        # the pusher resumed from before the poison: it pushes it, then what came after
        pushed = [r["notification"]["event_id"] for r in gateway.wait_for(2)]
        assert pushed[:2] == [poison_id, later_id]
    finally:
        assert running.stop() == 0, running.log()
        gateway.stop()
