"""GET /sync as the spec and Synapse shape it, where Ranvier once differed (issue 15, each
found by SyTest or a real client): lazy-loaded members, room summaries, presence and
device lists of new room-mates. Each test is a scenario over real HTTP on both engines."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import DEFAULT_PASSWORD, REGISTRATION_CONFIG, authed, login
from tests.integration.test_sync import (
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

LAZY = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 3}}}


def members_in_state(room: dict[str, Any]) -> set[str]:
    return {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}


# --- lazy-loaded members --------------------------------------------------------------------


def test_lazy_initial_sync_includes_the_syncing_users_own_membership(
    server: RunningServer,
) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    room_id = create_room(server, alice, preset="public_chat", name="Lazy")
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    for i in range(4):
        say(server, bob, room_id, f"b{i}")
    # spec: alice did not speak in the window, yet her own membership is there
    room = joined_room(sync(server, alice, filter=LAZY), room_id)
    assert members_in_state(room) == {alice.user_id, bob.user_id}
    # and with full_state on an incremental sync too
    token = sync(server, alice, filter=LAZY)["next_batch"]
    room = joined_room(sync(server, alice, filter=LAZY, since=token, full_state="true"), room_id)
    assert members_in_state(room) == {alice.user_id, bob.user_id}


def test_lazy_gappy_incremental_sync_includes_the_members_who_joined_in_the_gap(
    server: RunningServer,
) -> None:
    alice, bob, carol, dave = (user(server, n) for n in ("alice", "bob", "carol", "dave"))
    room_id = create_room(server, alice, preset="public_chat", name="Gap")
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    for i in range(3):
        say(server, bob, room_id, f"b{i}")
    token = sync(server, alice, filter=LAZY)["next_batch"]
    act(server, dave, room_id, "/join")
    for i in range(4):
        say(server, carol, room_id, f"c{i}")
    room = joined_room(sync(server, alice, filter=LAZY, since=token), room_id)
    assert room["timeline"]["limited"] is True
    # spec: carol for her messages, dave because he joined in the gap
    assert members_in_state(room) == {carol.user_id, dave.user_id}


# --- summaries ------------------------------------------------------------------------------


def test_unnamed_room_summary_has_heroes_and_their_lazy_loaded_members(
    server: RunningServer,
) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    for i in range(3):
        say(server, alice, room_id, f"a{i}")
    room = joined_room(sync(server, alice, filter=LAZY), room_id)
    assert room["summary"] == {
        "m.heroes": sorted([bob.user_id, carol.user_id]),
        "m.joined_member_count": 3,
        "m.invited_member_count": 0,
    }
    # spec: with lazy loading the heroes' member events come in the state
    assert members_in_state(room) == {alice.user_id, bob.user_id, carol.user_id}


def test_named_or_aliased_room_summary_has_only_the_counts(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    named = create_room(server, alice, preset="public_chat", name="A room name")
    aliased = create_room(server, alice, preset="public_chat")
    alias = f"#conformance{aliased[1:8].lower()}:{alice.user_id.split(':', 1)[1]}"
    reply = authed(
        alice,
        "PUT",
        f"{server.url}/_matrix/client/v3/directory/room/{alias.replace('#', '%23')}",
        {"room_id": aliased},
    )
    assert reply.status == 200, reply.body
    reply = authed(
        alice, "PUT", room_url(server, aliased, "/state/m.room.canonical_alias"), {"alias": alias}
    )
    assert reply.status == 200, reply.body
    # an empty name names nothing: heroes again
    emptied = create_room(server, alice, preset="public_chat", name="Soon empty")
    reply = authed(alice, "PUT", room_url(server, emptied, "/state/m.room.name"), {"name": ""})
    assert reply.status == 200, reply.body
    for room_id in (named, aliased, emptied):
        act(server, bob, room_id, "/join")
    body = sync(server, alice, filter=LAZY)
    for room_id in (named, aliased):
        assert joined_room(body, room_id)["summary"] == {
            "m.joined_member_count": 2,
            "m.invited_member_count": 0,
        }
    assert joined_room(body, emptied)["summary"]["m.heroes"] == [bob.user_id]


# --- device lists ---------------------------------------------------------------------------


def test_a_new_login_appears_in_room_mates_device_lists(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    token = sync(server, bob)["next_batch"]
    # as Synapse: a new device is a change room-mates must refetch keys for, before it
    # uploads any
    login(server.url, alice.user_id.split(":")[0][1:])
    body = sync(server, bob, since=token)
    assert alice.user_id in body.get("device_lists", {}).get("changed", [])
    # logging in again with an existing device ID changes nothing
    token = sync(server, alice)["next_batch"]
    reply = authed(
        bob,
        "POST",
        f"{server.url}/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": bob.user_id},
            "password": DEFAULT_PASSWORD,
            "device_id": bob.device_id,
        },
    )
    assert reply.status == 200, reply.body
    body = sync(server, alice, since=token)
    assert bob.user_id not in body.get("device_lists", {}).get("changed", [])


# --- presence -------------------------------------------------------------------------------


def presence_of(body: dict[str, Any]) -> dict[str, str]:
    return {
        e["sender"]: e["content"]["presence"] for e in body.get("presence", {}).get("events", [])
    }


def test_newly_joined_room_mates_see_each_others_presence(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    # both online (a sync marks its user online), and nothing changes after the tokens
    alice_token = sync(server, alice)["next_batch"]
    bob_token = sync(server, bob)["next_batch"]
    alice_token = sync(server, alice, since=alice_token)["next_batch"]
    act(server, bob, room_id, "/join")
    # as Synapse: each learns the other's current presence with the join
    assert presence_of(sync(server, bob, since=bob_token)).get(alice.user_id) == "online"
    assert presence_of(sync(server, alice, since=alice_token)).get(bob.user_id) == "online"


def test_offline_room_mates_presence_comes_with_a_join(server: RunningServer) -> None:
    # neither ever syncs online: both stay offline
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    alice_token = sync(server, alice, set_presence="offline")["next_batch"]
    bob_token = sync(server, bob, set_presence="offline")["next_batch"]
    act(server, bob, room_id, "/join")
    # as Synapse: the joiner learns the room-mates' presence, offline included, and the
    # room-mates the joiner's
    assert (
        presence_of(sync(server, bob, since=bob_token, set_presence="offline")).get(alice.user_id)
        == "offline"
    )
    assert (
        presence_of(sync(server, alice, since=alice_token, set_presence="offline")).get(bob.user_id)
        == "offline"
    )


# --- timelines ------------------------------------------------------------------------------


def put_state(server: RunningServer, who: Any, room_id: str, kind: str, content: Any) -> None:
    reply = authed(who, "PUT", room_url(server, room_id, f"/state/{kind}"), content)
    assert reply.status == 200, reply.body


def send(server: RunningServer, who: Any, room_id: str, kind: str, txn: str) -> None:
    reply = authed(who, "PUT", room_url(server, room_id, f"/send/{kind}/{txn}"), {"n": txn})
    assert reply.status == 200, reply.body


def member_events(room: dict[str, Any]) -> dict[str, str]:
    return {
        e["state_key"]: e["content"]["membership"]
        for e in room["timeline"]["events"]
        if e["type"] == "m.room.member"
    }


def test_rejoining_a_joined_visibility_room_shows_who_joined_meanwhile(
    server: RunningServer,
) -> None:
    alice, bob, carol = (user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    put_state(server, alice, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    act(server, alice, room_id, "/invite", {"user_id": carol.user_id})
    token = sync(server, bob)["next_batch"]
    act(server, bob, room_id, "/leave")
    act(server, carol, room_id, "/join")
    act(server, bob, room_id, "/join")
    # as Synapse: carol's join happened while bob could not see the room's history, but it
    # is part of the room's state now, so the timeline shows it
    room = joined_room(sync(server, bob, since=token), room_id)
    assert member_events(room).get(carol.user_id) == "join"
    assert member_events(room).get(bob.user_id) == "join"


def test_the_timeline_limit_counts_the_events_the_filter_lets_through(
    server: RunningServer,
) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice, preset="public_chat")
    say(server, alice, room_id, "the one")
    for i in range(12):
        send(server, alice, room_id, "a.filler", f"f{i}")
    only_messages = {
        "room": {"timeline": {"limit": 1, "types": ["m.room.message"]}, "state": {"types": []}}
    }
    room = joined_room(sync(server, alice, filter=only_messages), room_id)
    # spec: the limit counts what the filter lets through, not the fillers after it
    assert [e["content"].get("body") for e in room["timeline"]["events"]] == ["the one"]


def test_a_room_joined_since_the_token_is_limited_when_history_precedes_it(
    server: RunningServer,
) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    only_messages = {
        "room": {"timeline": {"limit": 10, "types": ["m.room.message"]}, "state": {"types": []}}
    }
    room_id = create_room(server, alice, preset="public_chat")
    for i in range(4):
        say(server, alice, room_id, f"before {i}")
    token = sync(server, bob, filter=only_messages)["next_batch"]
    for i in range(4):
        say(server, alice, room_id, f"after {i}")
    act(server, bob, room_id, "/join")
    timeline = joined_room(sync(server, bob, filter=only_messages, since=token), room_id)[
        "timeline"
    ]
    assert texts(timeline["events"]) == [f"before {i}" for i in range(4)] + [
        f"after {i}" for i in range(4)
    ]
    # the room's creation events came before, hidden by the filter: the client, which has
    # nothing of the room, is told there is more history
    assert timeline["limited"] is True
    reply = authed(
        bob, "GET", room_url(server, room_id, f"/messages?dir=b&from={timeline['prev_batch']}")
    )
    assert reply.status == 200, reply.body
    assert any(e["type"] == "m.room.create" for e in reply.json()["chunk"])


def test_an_incremental_sync_leaves_out_rooms_whose_news_are_all_filtered(
    server: RunningServer,
) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice, preset="public_chat")
    nothing = {
        "room": {
            "timeline": {"types": []},
            "state": {"types": ["a.madeup.test.state"]},
            "ephemeral": {"types": []},
        },
        "presence": {"types": []},
    }
    token = sync(server, alice, filter=nothing)["next_batch"]
    reply = authed(
        alice,
        "PUT",
        f"{server.url}/_matrix/client/v3/profile/{alice.user_id}/displayname",
        {"displayname": "Someone else"},
    )
    assert reply.status == 200, reply.body
    say(server, alice, room_id, "hidden by the filter")
    body = sync(server, alice, filter=nothing, since=token)
    assert room_id not in body.get("rooms", {}).get("join", {})


def test_an_incremental_sync_leaves_out_a_room_whose_only_news_is_ignored(
    server: RunningServer,
) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    reply = authed(
        alice,
        "PUT",
        f"{server.url}/_matrix/client/v3/user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
    )
    assert reply.status == 200, reply.body
    token = sync(server, alice)["next_batch"]
    say(server, bob, room_id, "ignored")
    body = sync(server, alice, since=token)
    assert room_id not in body.get("rooms", {}).get("join", {})
    # a message from someone not ignored still brings the room
    say(server, alice, room_id, "seen")
    body = sync(server, alice, since=token)
    assert texts(joined_room(body, room_id)["timeline"]["events"]) == ["seen"]


def test_federation_event_format_serves_the_pdus(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice, preset="public_chat")
    event_id = say(server, alice, room_id, "as federated")
    as_pdus = {"event_format": "federation", "room": {"timeline": {"limit": 1}}}
    room = joined_room(sync(server, alice, filter=as_pdus), room_id)
    (event,) = room["timeline"]["events"]
    # spec: the federation format keeps what the client format leaves out
    for key in ("room_id", "prev_events", "auth_events", "depth", "hashes", "signatures"):
        assert key in event, key
    assert event["event_id"] == event_id
    assert event["content"]["body"] == "as federated"
    # the client format, as before, has none of it
    room = joined_room(sync(server, alice, filter={"room": {"timeline": {"limit": 1}}}), room_id)
    assert "signatures" not in room["timeline"]["events"][0]
