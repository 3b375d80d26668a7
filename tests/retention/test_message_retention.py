"""Message retention over real HTTP on both engines: a room's `m.room.retention` policy
hides its expired messages from clients at once (/messages, /event, /context, /sync) and
the purge jobs delete them from the database for real (rows counted, and on SQLite the
pages in use), while the room's state, its latest event and rooms without a policy stay.
The server's allowed bounds clamp what a room asks for, and bad policy events are refused.

The server: allowed_lifetime_min 2s, allowed_lifetime_max 4s, one purge job every second
for rooms whose max_lifetime is at most an hour."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable
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

ALLOWED_MIN_MS = 2000
ALLOWED_MAX_MS = 4000
DAY_MS = 86_400_000
_calls = itertools.count()

server = module_server(
    **REGISTRATION_CONFIG,
    retention={
        "enabled": True,
        "allowed_lifetime_min": "2s",
        "allowed_lifetime_max": "4s",
        "purge_jobs": [{"longest_max_lifetime": "1h", "interval": "1s"}],
    },
)


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


def sqlite_pages_in_use(database: dict[str, Any]) -> int | None:
    """Pages of the SQLite file holding data (all pages but the free ones); None on
    PostgreSQL."""
    if database["name"] != "sqlite3":
        return None
    with sqlite3.connect(database["args"]["database"]) as conn:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    return int(pages) - int(free)


def set_policy(server: RunningServer, who: Session, room_id: str, content: dict[str, Any]) -> Any:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.retention/"
    return authed(who, "PUT", url, content)


def synced_bodies(server: RunningServer, who: Session, room_id: str) -> list[str]:
    """The message bodies of the room's timeline in an initial /sync."""
    # a filter of its own each time: the server answers a repeated request from its cache
    body = json.dumps({"room": {"rooms": [room_id], "timeline": {"limit": 100 + next(_calls)}}})
    reply = authed(who, "GET", f"{server.url}{CLIENT}/sync?filter={quote(body)}")
    assert reply.status == 200, reply.body
    timeline = reply.json()["rooms"]["join"][room_id]["timeline"]["events"]
    return [e["content"]["body"] for e in timeline if e["type"] == "m.room.message"]


def event_status(server: RunningServer, who: Session, room_id: str, event_id: str) -> int:
    reply = authed(
        who, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/event/{quote(event_id)}"
    )
    return reply.status


def context_status(server: RunningServer, who: Session, room_id: str, event_id: str) -> int:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/context/{quote(event_id)}"
    return authed(who, "GET", url).status


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not after {seconds}s: {what}")


def test_expired_messages_are_deleted_and_the_database_shrinks(
    server: RunningServer, alice: Session, module_database: dict[str, Any]
) -> None:
    room_id = create_room(server.url, alice, name="Retained")
    plain_id = create_room(server.url, alice, name="Kept forever")
    kept = [send_text(server.url, alice, plain_id, f"kept {i}") for i in range(3)]
    filler = "x" * 20_000
    old = [send_text(server.url, alice, room_id, f"old {i} {filler}") for i in range(30)]
    stored_before = stored_event_ids(module_database, room_id)
    pages_before = sqlite_pages_in_use(module_database)
    assert set(old) <= stored_before

    # 3s lies within the allowed bounds, and the job covers it
    policy = set_policy(server, alice, room_id, {"max_lifetime": 3000})
    assert policy.status == 200, policy.body
    last = send_text(server.url, alice, room_id, "last")
    last_sent = time.monotonic()

    wait_until(
        lambda: not set(old) & stored_event_ids(module_database, room_id),
        20,
        "the expired messages are deleted",
    )
    # the latest event outlives its expiry (a room needs it to go on), hidden from clients
    time.sleep(max(0.0, last_sent + 3.0 + 1.5 - time.monotonic()))
    stored_after = stored_event_ids(module_database, room_id)
    assert last in stored_after
    assert message_bodies(server, alice, room_id) == []
    assert synced_bodies(server, alice, room_id) == []
    assert event_status(server, alice, room_id, old[0]) == 404
    assert event_status(server, alice, room_id, last) == 404
    # the 30 messages of 20 KB each, and nothing else, are gone from the rows and the file
    assert stored_after == (stored_before - set(old)) | {policy.json()["event_id"], last}
    pages_after = sqlite_pages_in_use(module_database)
    if pages_before is not None:
        assert pages_after is not None
        assert pages_before - pages_after >= 30 * 20_000 // 4096 // 2, (pages_before, pages_after)

    # the room's state stays, and the room goes on
    state = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state"
    name = authed(alice, "GET", f"{state}/m.room.name/")
    assert name.status == 200 and name.json() == {"name": "Retained"}
    assert authed(alice, "GET", f"{state}/m.room.retention/").json() == {"max_lifetime": 3000}
    members = authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/joined_members")
    assert set(members.json()["joined"]) == {alice.user_id}
    send_text(server.url, alice, room_id, "fresh")
    assert message_bodies(server, alice, room_id) == ["fresh"]

    # a room without a policy (and no default policy) keeps everything
    assert set(kept) <= stored_event_ids(module_database, plain_id)
    assert message_bodies(server, alice, plain_id) == ["kept 2", "kept 1", "kept 0"]


def test_clients_stop_seeing_expired_messages_before_any_purge(
    server: RunningServer, alice: Session, module_database: dict[str, Any]
) -> None:
    # a day is outside the purge job's range, so nothing is deleted; the allowed maximum
    # brings the room's lifetime down to 4s, after which its messages are hidden
    room_id = create_room(server.url, alice, name="Hidden")
    assert set_policy(server, alice, room_id, {"max_lifetime": DAY_MS}).status == 200
    old = send_text(server.url, alice, room_id, "old")
    sent = time.monotonic()
    assert message_bodies(server, alice, room_id) == ["old"]
    assert synced_bodies(server, alice, room_id) == ["old"]
    assert event_status(server, alice, room_id, old) == 200
    assert context_status(server, alice, room_id, old) == 200

    time.sleep(max(0.0, sent + ALLOWED_MAX_MS / 1000 + 0.5 - time.monotonic()))
    assert message_bodies(server, alice, room_id) == []
    assert synced_bodies(server, alice, room_id) == []
    assert event_status(server, alice, room_id, old) == 404
    assert context_status(server, alice, room_id, old) == 404
    # hidden, not purged
    assert old in stored_event_ids(module_database, room_id)
    # state is not subject to retention
    name = authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.name/")
    assert name.status == 200 and name.json() == {"name": "Hidden"}
    send_text(server.url, alice, room_id, "new")
    assert message_bodies(server, alice, room_id) == ["new"]


def test_the_allowed_minimum_keeps_messages_longer_than_the_room_asks(
    server: RunningServer, alice: Session, module_database: dict[str, Any]
) -> None:
    room_id = create_room(server.url, alice, name="Short-lived")
    assert set_policy(server, alice, room_id, {"max_lifetime": 100}).status == 200
    young = send_text(server.url, alice, room_id, "young")
    sent = time.monotonic()
    send_text(server.url, alice, room_id, "latest")
    # well past the room's 100ms, and past a purge job's run, but within the 2s minimum
    time.sleep(max(0.0, sent + 1.3 - time.monotonic()))
    assert message_bodies(server, alice, room_id) == ["latest", "young"]
    assert young in stored_event_ids(module_database, room_id)

    wait_until(
        lambda: young not in stored_event_ids(module_database, room_id),
        10,
        "the message is purged once older than the allowed minimum",
    )
    assert time.monotonic() - sent >= ALLOWED_MIN_MS / 1000
    assert message_bodies(server, alice, room_id) == []


@pytest.mark.parametrize(
    "content",
    [
        {"max_lifetime": "1d"},
        {"max_lifetime": -1},
        {"max_lifetime": True},
        {"min_lifetime": 1.5},
        {"min_lifetime": 5000, "max_lifetime": 1000},
    ],
)
def test_a_bad_policy_event_is_refused(
    server: RunningServer, alice: Session, content: dict[str, Any]
) -> None:
    room_id = create_room(server.url, alice)
    reply = set_policy(server, alice, room_id, content)
    assert reply.status == 400, reply.body
    assert reply.errcode == "M_BAD_JSON"
    state = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.retention/"
    assert authed(alice, "GET", state).status == 404
