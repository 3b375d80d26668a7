"""Lazy-loaded members across incremental syncs (issue 15, SyTest 31sync/15lazy-members.pl):
a device is not sent again a membership event it already holds, judged by the token it
syncs from, so retries and unknown tokens still get what they need. Each test is a
scenario over real HTTP on both engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, login
from tests.integration.test_sync import act, create_room, joined_room, say, sync, user

server = module_server(caches={"sync_response_cache_duration": 0}, **REGISTRATION_CONFIG)

LIMIT = 3
LAZY = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": LIMIT}}}
REDUNDANT = {
    "room": {
        "state": {"lazy_load_members": True, "include_redundant_members": True},
        "timeline": {"limit": LIMIT},
    }
}


def state_members(body: dict[str, Any], room_id: str) -> dict[str, dict[str, Any]]:
    """state_key -> content of the room's membership events in the state section."""
    room = joined_room(body, room_id)
    return {
        e["state_key"]: e["content"]
        for e in room["state"]["events"]
        if e["type"] == "m.room.member"
    }


def talk(server: RunningServer, who: Session, room_id: str, count: int) -> None:
    for i in range(count):
        say(server, who, room_id, f"{who.user_id} {i}")


def three_in_a_room(server: RunningServer) -> tuple[Session, Session, Session, str, str]:
    """alice, bob and carol in a room; alice's lazy initial sync saw bob speak: she holds
    her own and bob's membership. Returns them, the room and her token."""
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    room_id = create_room(server, alice, preset="public_chat", name="Lazy")
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    talk(server, bob, room_id, LIMIT)
    body = sync(server, alice, filter=LAZY)
    assert set(state_members(body, room_id)) == {alice.user_id, bob.user_id}
    return alice, bob, carol, room_id, body["next_batch"]


def test_gappy_sync_sends_the_gaps_changes_and_only_new_senders(server: RunningServer) -> None:
    alice, bob, carol, room_id, token = three_in_a_room(server)
    act(server, carol, room_id, "/leave")
    talk(server, bob, room_id, LIMIT + 1)
    body = sync(server, alice, filter=LAZY, since=token)
    assert joined_room(body, room_id)["timeline"]["limited"] is True
    # spec (GET /sync): the gap's membership changes whatever the client holds; bob's
    # unchanged membership was sent before
    assert {k: v["membership"] for k, v in state_members(body, room_id).items()} == {
        carol.user_id: "leave"
    }


def test_incremental_sync_does_not_resend_a_held_sender(server: RunningServer) -> None:
    alice, bob, carol, room_id, token = three_in_a_room(server)
    say(server, bob, room_id, "again")
    say(server, carol, room_id, "first words")
    body = sync(server, alice, filter=LAZY, since=token)
    # carol was never sent; bob was
    assert set(state_members(body, room_id)) == {carol.user_id}
    say(server, bob, room_id, "more")
    say(server, carol, room_id, "more")
    body = sync(server, alice, filter=LAZY, since=body["next_batch"])
    assert state_members(body, room_id) == {}


def test_a_retried_token_is_sent_what_its_first_answer_had(server: RunningServer) -> None:
    alice, bob, carol, room_id, token = three_in_a_room(server)
    say(server, bob, room_id, "b")
    say(server, carol, room_id, "c")
    first = sync(server, alice, filter=LAZY, since=token)
    assert set(state_members(first, room_id)) == {carol.user_id}
    # the answer was lost: the same token again still brings carol, not bob
    retry = sync(server, alice, filter=LAZY, since=token)
    assert set(state_members(retry, room_id)) == {carol.user_id}
    say(server, carol, room_id, "c again")
    body = sync(server, alice, filter=LAZY, since=retry["next_batch"])
    assert state_members(body, room_id) == {}


def test_a_changed_membership_is_sent_once(server: RunningServer) -> None:
    alice, bob, _, room_id, token = three_in_a_room(server)
    reply = authed(
        bob,
        "PUT",
        f"{server.url}/_matrix/client/v3/profile/{quote(bob.user_id)}/displayname",
        {"displayname": "Robert"},
    )
    assert reply.status == 200, reply.body
    # the new membership falls in the gap of a limited sync
    talk(server, bob, room_id, LIMIT + 1)
    body = sync(server, alice, filter=LAZY, since=token)
    members = state_members(body, room_id)
    assert set(members) == {bob.user_id}
    assert members[bob.user_id]["displayname"] == "Robert"
    say(server, bob, room_id, "and again")
    body = sync(server, alice, filter=LAZY, since=body["next_batch"])
    assert state_members(body, room_id) == {}


def test_include_redundant_members_resends_them(server: RunningServer) -> None:
    alice, bob, _, room_id, _ = three_in_a_room(server)
    token = sync(server, alice, filter=REDUNDANT)["next_batch"]
    say(server, bob, room_id, "again")
    body = sync(server, alice, filter=REDUNDANT, since=token)
    assert set(state_members(body, room_id)) == {bob.user_id}


def test_an_unknown_or_forgotten_token_gets_the_members(server: RunningServer) -> None:
    alice, bob, _, room_id, first_token = three_in_a_room(server)
    # a few more answers, each with a new token: the first is no longer remembered
    token = first_token
    for i in range(4):
        say(server, bob, room_id, f"b{i}")
        token = sync(server, alice, filter=LAZY, since=token)["next_batch"]
    say(server, bob, room_id, "late")
    body = sync(server, alice, filter=LAZY, since=first_token)
    assert bob.user_id in state_members(body, room_id)
    # another device of alice's, with a token this device was never given
    other = login(server.url, alice.user_id.split(":", 1)[0][1:])
    body = sync(server, other, filter=LAZY, since=token)
    assert bob.user_id in state_members(body, room_id)
