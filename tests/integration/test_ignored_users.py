"""Ignoring users (spec: client-server-api "Ignoring Users"), as a client observes it over
HTTP on both engines: an ignored user's messages vanish from /sync and /messages, their
invites from /sync, while the state they set still applies."""

from __future__ import annotations

import urllib.parse
from typing import Any

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed
from tests.integration.test_sync import (
    CLIENT,
    act,
    create_room,
    joined_room,
    room_url,
    say,
    sync,
    texts,
    user,
)

server = module_server(caches={"sync_response_cache_duration": 0}, **REGISTRATION_CONFIG)


def ignore(server: RunningServer, who: Session, *user_ids: str) -> None:
    reply = authed(
        who,
        "PUT",
        f"{server.url}{CLIENT}/user/{urllib.parse.quote(who.user_id)}"
        "/account_data/m.ignored_user_list",
        {"ignored_users": {user_id: {} for user_id in user_ids}},
    )
    assert reply.status == 200, reply.body


def messages(server: RunningServer, who: Session, room_id: str) -> list[dict[str, Any]]:
    reply = authed(who, "GET", room_url(server, room_id, "/messages?dir=b&limit=50"))
    assert reply.status == 200, reply.body
    chunk: list[dict[str, Any]] = reply.json()["chunk"]
    return chunk


def test_ignored_users_messages_vanish_but_their_state_stays(server: RunningServer) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    # bob may set the topic
    room_id = create_room(
        server,
        alice,
        preset="public_chat",
        power_level_content_override={"users": {bob.user_id: 50}},
    )
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    ignore(server, alice, bob.user_id)
    token = sync(server, alice)["next_batch"]
    say(server, bob, room_id, "from bob")
    say(server, carol, room_id, "from carol")
    reply = authed(bob, "PUT", room_url(server, room_id, "/state/m.room.topic"), {"topic": "T"})
    assert reply.status == 200, reply.body

    timeline = joined_room(sync(server, alice, since=token), room_id)["timeline"]["events"]
    assert texts(timeline) == ["from carol"]
    assert any(e["type"] == "m.room.topic" and e["sender"] == bob.user_id for e in timeline)
    initial = joined_room(sync(server, alice), room_id)["timeline"]["events"]
    assert "from bob" not in texts(initial) and "from carol" in texts(initial)
    history = messages(server, alice, room_id)
    assert "from bob" not in texts(history) and "from carol" in texts(history)
    # carol, who ignores nobody, sees everything
    assert {"from bob", "from carol"} <= set(texts(messages(server, carol, room_id)))

    # un-ignored: bob's messages show again
    ignore(server, alice)
    assert "from bob" in texts(messages(server, alice, room_id))


def test_invites_from_ignored_users_are_not_shown(server: RunningServer) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    ignore(server, alice, bob.user_id)
    token = sync(server, alice)["next_batch"]
    from_bob = create_room(server, bob, invite=[alice.user_id])
    from_carol = create_room(server, carol, invite=[alice.user_id])
    invites = sync(server, alice, since=token).get("rooms", {}).get("invite", {})
    assert from_carol in invites and from_bob not in invites
    invites = sync(server, alice).get("rooms", {}).get("invite", {})
    assert from_carol in invites and from_bob not in invites
