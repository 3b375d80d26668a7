"""/messages backfills over federation: a user who joined a room of another server pages
back past its join, and the history from before is pulled with /backfill, checked, stored
and served in order down to the room's creation, once; /sync never shows it as new. Both
ways between a Ranvier on SQLite and one on PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ok
from tests.integration.matrix import CLIENT, Session

BEFORE = 30


def say(server: FederatingServer, user: Session, room_id: str, body: str) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    ok(server.authed(user, "PUT", path, {"msgtype": "m.text", "body": body}))


def page_back(server: FederatingServer, user: Session, room_id: str) -> list[dict[str, Any]]:
    """Every event /messages hands out going back from now, page by page until a page
    has no `end`."""
    events: list[dict[str, Any]] = []
    token = ""
    for _ in range(20):
        path = f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=20{token}"
        page = ok(server.authed(user, "GET", path))
        events.extend(page["chunk"])
        if "end" not in page:
            return events
        token = f"&from={quote(page['end'])}"
    raise AssertionError("pagination never ended")


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def test_history_from_before_a_remote_join_is_backfilled(two_servers: ServerPair) -> None:
    for here, there in [
        (two_servers.first, two_servers.second),
        (two_servers.second, two_servers.first),
    ]:
        owner = register(there, f"owner{secrets.token_hex(3)}")
        body = {"preset": "public_chat", "name": "Old room"}
        room_id = ok(there.authed(owner, "POST", CLIENT + "/createRoom", body))["room_id"]
        for i in range(BEFORE):
            say(there, owner, room_id, f"old {i}")
        joiner = register(here, f"joiner{secrets.token_hex(3)}")
        path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(there.server_name)}"
        ok(here.authed(joiner, "POST", path))
        since = ok(here.authed(joiner, "GET", CLIENT + "/sync?timeout=0"))["next_batch"]
        events = page_back(here, joiner, room_id)
        assert bodies(events) == [f"old {i}" for i in reversed(range(BEFORE))]
        assert events[0]["type"] == "m.room.member"
        assert events[0]["state_key"] == joiner.user_id
        assert events[-1]["type"] == "m.room.create"
        assert len({e["event_id"] for e in events}) == len(events)
        # stored: paging again gives the same history (nothing left to ask for)
        again = page_back(here, joiner, room_id)
        assert [e["event_id"] for e in again] == [e["event_id"] for e in events]
        # the history is old: an incremental sync shows none of it
        say(here, joiner, room_id, "hello again")
        response = ok(here.authed(joiner, "GET", f"{CLIENT}/sync?since={quote(since)}&timeout=0"))
        timeline = response["rooms"]["join"][room_id]["timeline"]["events"]
        assert bodies(timeline) == ["hello again"]
