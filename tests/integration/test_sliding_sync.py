"""Simplified sliding sync (MSC4186) over real HTTP on both engines: lists sorted by
recency with ranges, timelines and required_state exact, incremental responses from a
`pos`, long-polls woken by the notifier, unknown positions, list filters."""

from __future__ import annotations

import itertools
import threading
import time
import urllib.parse
from typing import Any

from tests.integration.client import Reply
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, login, make_admin
from tests.integration.test_admin_rooms import wait_for_deletion
from tests.integration.test_sync import act, create_room, room_url, say, texts, user

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
_room_list_admins = itertools.count()


def sliding_reply(server: RunningServer, who: Session, body: dict[str, Any], **query: Any) -> Reply:
    url = server.url + PATH
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return authed(who, "POST", url, body)


def sliding(server: RunningServer, who: Session, body: dict[str, Any], **query: Any) -> Any:
    reply = sliding_reply(server, who, body, **query)
    assert reply.status == 200, reply.body
    return reply.json()


def one_list(
    start: int, end: int, *, timeline_limit: int = 1, required_state: Any = (), **extra: Any
) -> dict[str, Any]:
    return {
        "lists": {
            "all": {
                "ranges": [[start, end]],
                "timeline_limit": timeline_limit,
                "required_state": [list(pair) for pair in required_state],
                **extra,
            }
        }
    }


def state_keys(room: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room["required_state"]}


def test_the_most_recent_rooms_come_first_and_a_message_moves_a_room_up(
    server: RunningServer,
) -> None:
    alice = user(server, "alice")
    rooms = [create_room(server, alice) for _ in range(50)]
    for index, room_id in enumerate(rooms):
        say(server, alice, room_id, f"message {index}")
    body = sliding(server, alice, one_list(0, 9))
    assert body["lists"]["all"]["count"] == 50
    newest_first = list(reversed(rooms))
    assert set(body["rooms"]) == set(newest_first[:10])
    stamps = {room_id: room["bump_stamp"] for room_id, room in body["rooms"].items()}
    assert sorted(stamps, key=lambda r: -stamps[r]) == newest_first[:10]
    room = body["rooms"][rooms[-1]]
    assert room["initial"] is True
    assert texts(room["timeline"]) == ["message 49"]
    assert room["limited"] is True
    assert room["joined_count"] == 1 and room["invited_count"] == 0
    # prev_batch pages back through /messages
    messages = authed(
        alice,
        "GET",
        room_url(server, rooms[-1], "/messages")
        + "?"
        + urllib.parse.urlencode({"dir": "b", "from": room["prev_batch"], "limit": 50}),
    )
    assert messages.status == 200, messages.body
    assert messages.json()["chunk"][0]["type"] != "m.room.message"

    # nothing new: the same rooms are not sent again
    quiet = sliding(server, alice, one_list(0, 9), pos=body["pos"])
    assert quiet["rooms"] == {}
    # a message in the oldest room moves it into range, alone
    say(server, alice, rooms[0], "back on top")
    moved = sliding(server, alice, one_list(0, 9), pos=quiet["pos"])
    assert list(moved["rooms"]) == [rooms[0]]
    room = moved["rooms"][rooms[0]]
    assert room["initial"] is True
    assert texts(room["timeline"]) == ["back on top"]
    assert room["num_live"] == 1
    # and a message in a room the connection has: only the new event
    say(server, alice, rooms[0], "again")
    again = sliding(server, alice, one_list(0, 9), pos=moved["pos"])
    assert list(again["rooms"]) == [rooms[0]]
    assert "initial" not in again["rooms"][rooms[0]]
    assert texts(again["rooms"][rooms[0]]["timeline"]) == ["again"]
    assert again["rooms"][rooms[0]]["limited"] is False


def test_required_state_is_exact(server: RunningServer) -> None:
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    room_id = create_room(server, alice, preset="public_chat", name="The room", topic="t")
    act(server, bob, room_id, "/join")
    act(server, carol, room_id, "/join")
    say(server, bob, room_id, "from bob")
    wanted = [
        ("m.room.name", ""),
        ("m.room.member", "$LAZY"),
        ("m.room.member", "$ME"),
        ("m.room.power_levels", "*"),
    ]
    body = sliding(server, carol, one_list(0, 0, timeline_limit=1, required_state=wanted))
    room = body["rooms"][room_id]
    assert state_keys(room) == {
        ("m.room.name", ""),
        ("m.room.member", bob.user_id),
        ("m.room.member", carol.user_id),
        ("m.room.power_levels", ""),
    }
    assert room["name"] == "The room"
    # `*` as the type: every state event with that key
    body = sliding(server, carol, one_list(0, 0, required_state=[("*", alice.user_id)]))
    assert state_keys(body["rooms"][room_id]) == {("m.room.member", alice.user_id)}
    everything = sliding(server, carol, one_list(0, 0, required_state=[("*", "*")]))
    assert ("m.room.topic", "") in state_keys(everything["rooms"][room_id])
    assert ("m.room.create", "") in state_keys(everything["rooms"][room_id])
    # incremental: only a changed entry
    state_url = room_url(server, room_id, "/state/m.room.name/")
    assert authed(alice, "PUT", state_url, {"name": "Renamed"}).status == 200
    later = sliding(
        server,
        carol,
        one_list(0, 0, required_state=[("m.room.name", "")]),
        pos=everything["pos"],
    )
    room = later["rooms"][room_id]
    assert [e["content"] for e in room["required_state"]] == [{"name": "Renamed"}]
    assert room["name"] == "Renamed"


def test_an_unknown_pos_is_m_unknown_pos(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    for pos in ("12345678", "nonsense"):
        reply = sliding_reply(server, alice, one_list(0, 0), pos=pos)
        assert reply.status == 400
        assert reply.json()["errcode"] == "M_UNKNOWN_POS"
    # another user's, or another connection's, position is not theirs to continue
    body = sliding(server, alice, {"conn_id": "main", **one_list(0, 0)})
    assert sliding_reply(server, bob, one_list(0, 0), pos=body["pos"]).status == 400
    other = sliding_reply(server, alice, {"conn_id": "other", **one_list(0, 0)}, pos=body["pos"])
    assert other.json()["errcode"] == "M_UNKNOWN_POS"
    # a position two stored positions back has gone; the one just used may be retried
    room_id = create_room(server, alice)
    say(server, alice, room_id, "one")
    second = sliding(server, alice, {"conn_id": "main", **one_list(0, 0)}, pos=body["pos"])
    assert room_id in second["rooms"]
    say(server, alice, room_id, "two")
    third = sliding(server, alice, {"conn_id": "main", **one_list(0, 0)}, pos=second["pos"])
    assert room_id in third["rooms"]
    assert sliding(server, alice, {"conn_id": "main", **one_list(0, 0)}, pos=second["pos"])
    gone = sliding_reply(server, alice, {"conn_id": "main", **one_list(0, 0)}, pos=body["pos"])
    assert gone.json()["errcode"] == "M_UNKNOWN_POS"
    # a request without a pos starts the connection afresh: its positions go, and are
    # never handed out again
    fresh = sliding(server, alice, {"conn_id": "main", **one_list(0, 0)})
    assert fresh["pos"] not in (body["pos"], second["pos"])
    again = sliding_reply(server, alice, {"conn_id": "main", **one_list(0, 0)}, pos=second["pos"])
    assert again.json()["errcode"] == "M_UNKNOWN_POS"


def test_a_response_with_no_room_carries_its_token_in_the_pos(server: RunningServer) -> None:
    """Nothing sent, nothing stored: the pos names the stored position and the new token; a
    later message is still delivered from it, exactly once, and a tampered pos is refused."""
    alice = user(server, "alice")
    room_id = create_room(server, alice)
    say(server, alice, room_id, "before")
    first = sliding(server, alice, one_list(0, 0))
    unrelated = f"{server.url}{CLIENT}/user/{alice.user_id}/account_data/org.example.unrelated"
    assert authed(alice, "PUT", unrelated, {"n": 1}).status == 200
    quiet = sliding(server, alice, one_list(0, 0), pos=first["pos"])
    assert quiet["rooms"] == {}
    stored, _, carried = quiet["pos"].partition("-")
    assert stored == first["pos"] and carried, quiet["pos"]
    say(server, alice, room_id, "after")
    moved = sliding(server, alice, one_list(0, 0), pos=quiet["pos"])
    assert texts(moved["rooms"][room_id]["timeline"]) == ["after"]
    assert "-" not in moved["pos"]
    again = sliding(server, alice, one_list(0, 0), pos=moved["pos"])
    assert again["rooms"] == {}
    for tampered in (f"{stored}-nonsense", f"{stored}-", f"-{carried}", f"{stored}-s1-2"):
        reply = sliding_reply(server, alice, one_list(0, 0), pos=tampered)
        assert reply.status == 400 and reply.json()["errcode"] == "M_UNKNOWN_POS", tampered
    bob = user(server, "bob")
    assert sliding_reply(server, bob, one_list(0, 0), pos=quiet["pos"]).status == 400


def test_bad_requests_are_refused(server: RunningServer) -> None:
    alice = user(server, "alice")
    bad_range = sliding_reply(server, alice, one_list(5, 2))
    assert bad_range.status == 400
    assert bad_range.json()["errcode"] == "M_INVALID_PARAM"
    no_limit = {"lists": {"all": {"ranges": [[0, 1]], "required_state": []}}}
    assert sliding_reply(server, alice, no_limit).json()["errcode"] == "M_MISSING_PARAM"
    pair = one_list(0, 1)
    pair["lists"]["all"]["required_state"] = [["m.room.name"]]
    assert sliding_reply(server, alice, pair).json()["errcode"] == "M_BAD_JSON"


def test_a_waiting_long_poll_wakes_with_a_message(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    pos = sliding(server, bob, one_list(0, 9))["pos"]
    sent_at: list[float] = []

    def send_later() -> None:
        time.sleep(0.5)
        sent_at.append(time.monotonic())
        say(server, alice, room_id, "wake up")

    sender = threading.Thread(target=send_later)
    started = time.monotonic()
    sender.start()
    reply = sliding_reply(server, bob, one_list(0, 9), pos=pos, timeout=8000)
    returned = time.monotonic()
    sender.join()
    assert reply.status == 200, reply.body
    assert texts(reply.json()["rooms"][room_id]["timeline"]) == ["wake up"]
    assert returned - sent_at[0] < 1.0 and returned - started < 5


def test_a_long_poll_with_nothing_new_answers_at_its_timeout(server: RunningServer) -> None:
    alice = user(server, "alice")
    create_room(server, alice)
    pos = sliding(server, alice, one_list(0, 9))["pos"]
    started = time.monotonic()
    body = sliding(server, alice, one_list(0, 9), pos=pos, timeout=500)
    assert time.monotonic() - started >= 0.5
    assert body["rooms"] == {} and body["pos"] != pos


def test_invites_and_subscriptions(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, name="Invite me")
    act(server, alice, room_id, "/invite", {"user_id": bob.user_id})
    body = sliding(server, bob, one_list(0, 9, filters={"is_invite": True}))
    room = body["rooms"][room_id]
    assert body["lists"]["all"]["count"] == 1
    assert {e["type"] for e in room["invite_state"]} >= {"m.room.create", "m.room.member"}
    assert room["name"] == "Invite me"
    assert "timeline" not in room
    none = sliding(
        server, bob, {"conn_id": "other", **one_list(0, 9, filters={"is_invite": False})}
    )
    assert none["lists"]["all"]["count"] == 0
    # talk in the room is not the invitee's news; joining it sends the room whole
    say(server, alice, room_id, "while bob is invited")
    later = sliding(server, bob, one_list(0, 9), pos=body["pos"])
    assert later["rooms"] == {}
    act(server, bob, room_id, "/join")
    joined = sliding(server, bob, one_list(0, 9, timeline_limit=5), pos=later["pos"])
    room = joined["rooms"][room_id]
    assert room["initial"] is True and "invite_state" not in room
    assert texts(room["timeline"]) == ["while bob is invited"]
    assert room["timeline"][-1]["type"] == "m.room.member"
    # a subscription sends a room whatever the lists hold
    other = create_room(server, bob)
    say(server, bob, other, "subscribed")
    body = sliding(
        server,
        bob,
        {"room_subscriptions": {other: {"required_state": [], "timeline_limit": 5}}},
    )
    assert list(body["rooms"]) == [other]
    assert texts(body["rooms"][other]["timeline"]) == ["subscribed"]


def test_list_filters(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    space = create_room(server, alice, creation_content={"type": "m.space"})
    child = create_room(server, alice)
    encrypted = create_room(
        server,
        alice,
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    direct = create_room(server, alice, is_direct=True, invite=[bob.user_id])
    child_url = room_url(server, space, "/state/m.space.child/" + urllib.parse.quote(child))
    assert authed(alice, "PUT", child_url, {"via": ["localhost"]}).status == 200
    direct_url = f"{server.url}/_matrix/client/v3/user/{alice.user_id}/account_data/m.direct"
    assert authed(alice, "PUT", direct_url, {bob.user_id: [direct]}).status == 200
    tag_url = (
        f"{server.url}/_matrix/client/v3/user/{alice.user_id}/rooms/"
        f"{urllib.parse.quote(child)}/tags/m.favourite"
    )
    assert authed(alice, "PUT", tag_url, {}).status == 200

    def listed(filters: dict[str, Any]) -> set[str]:
        body = sliding(server, alice, one_list(0, 99, timeline_limit=0, filters=filters))
        return set(body["rooms"])

    everything = {space, child, encrypted, direct}
    assert listed({}) == everything
    assert listed({"is_dm": True}) == {direct}
    assert listed({"is_dm": False}) == everything - {direct}
    assert listed({"is_encrypted": True}) == {encrypted}
    assert listed({"room_types": ["m.space"]}) == {space}
    assert listed({"not_room_types": ["m.space"]}) == everything - {space}
    assert listed({"room_types": [None]}) == everything - {space}
    assert listed({"spaces": [space]}) == {child}
    assert listed({"tags": ["m.favourite"]}) == {child}
    assert listed({"not_tags": ["m.favourite"]}) == everything - {child}
    body = sliding(server, alice, one_list(0, 99, filters={"is_dm": True}))
    assert body["rooms"][direct]["is_dm"] is True


def test_heroes_name_a_room_without_a_name_and_counts_are_real(server: RunningServer) -> None:
    alice, bob = user(server, "alice"), user(server, "bob")
    room_id = create_room(server, alice, preset="public_chat")
    act(server, bob, room_id, "/join")
    profile = f"{server.url}/_matrix/client/v3/profile/{bob.user_id}/displayname"
    assert authed(bob, "PUT", profile, {"displayname": "Bob B"}).status == 200
    say(server, bob, room_id, "hello alice")
    room = sliding(server, alice, one_list(0, 0))["rooms"][room_id]
    assert "name" not in room
    assert room["heroes"] == [{"user_id": bob.user_id, "displayname": "Bob B"}]
    assert room["joined_count"] == 2
    assert room["notification_count"] == 1 and room["highlight_count"] == 0
    assert "is_dm" not in room


def test_a_longer_timeline_limit_sends_the_room_again_expanded(server: RunningServer) -> None:
    alice = user(server, "alice")
    room_id = create_room(server, alice)
    for index in range(4):
        say(server, alice, room_id, f"message {index}")
    first = sliding(server, alice, one_list(0, 0, timeline_limit=1))
    assert texts(first["rooms"][room_id]["timeline"]) == ["message 3"]
    # nothing new in the room, but the client now wants three events of it
    longer = sliding(server, alice, one_list(0, 0, timeline_limit=3), pos=first["pos"])
    room = longer["rooms"][room_id]
    assert room["unstable_expanded_timeline"] is True and "initial" not in room
    assert texts(room["timeline"]) == ["message 1", "message 2", "message 3"]
    assert room["limited"] is True
    # sent with three now: asking for three again sends nothing
    same = sliding(server, alice, one_list(0, 0, timeline_limit=3), pos=longer["pos"])
    assert same["rooms"] == {}


def test_a_room_asked_for_with_more_state_is_sent_with_it(server: RunningServer) -> None:
    """A client opening a room subscribes to more of its state than its room list asks for:
    the room comes again with the new entries only, though nothing happened in it, once."""
    alice = user(server, "alice")
    room_id = create_room(server, alice, name="Lounge", topic="Chat here")
    say(server, alice, room_id, "hello")
    name_only = one_list(0, 0, required_state=[("m.room.name", "")])
    first = sliding(server, alice, name_only)
    assert state_keys(first["rooms"][room_id]) == {("m.room.name", "")}
    opened = {
        **name_only,
        "room_subscriptions": {
            room_id: {
                "timeline_limit": 1,
                "required_state": [["m.room.name", ""], ["m.room.topic", ""]],
            }
        },
    }
    wider = sliding(server, alice, opened, pos=first["pos"])
    room = wider["rooms"][room_id]
    assert state_keys(room) == {("m.room.topic", "")}
    assert room["required_state"][0]["content"] == {"topic": "Chat here"}
    assert "initial" not in room and "timeline" not in room
    # held now: the same request sends nothing; asking for less sends nothing either
    same = sliding(server, alice, opened, pos=wider["pos"])
    assert same["rooms"] == {}
    narrower = sliding(server, alice, name_only, pos=same["pos"])
    assert narrower["rooms"] == {}
    # and the room's news still comes
    say(server, alice, room_id, "again")
    later = sliding(server, alice, opened, pos=narrower["pos"])
    assert texts(later["rooms"][room_id]["timeline"]) == ["again"]


def test_the_kept_room_list_follows_leaves_forgets_and_purges(server: RunningServer) -> None:
    """Each user's room list is kept between requests: memberships written since, a room
    forgotten (its rows change in place) and a room purged (its rows go) all show."""
    alice, bob = user(server, "alice"), user(server, "bob")
    admin = make_admin(server.config_path, f"boss{next(_room_list_admins)}")
    left, purged, stays = (create_room(server, alice, preset="public_chat") for _ in range(3))
    for room_id in (left, purged, stays):
        act(server, bob, room_id, "/join")
    subscribe = {room_id: {"required_state": [], "timeline_limit": 1} for room_id in (left, purged)}
    first = sliding(server, bob, {**one_list(0, 9), "room_subscriptions": subscribe})
    assert first["lists"]["all"]["count"] == 3
    assert set(first["rooms"]) == {left, purged, stays}

    # a membership written since the kept list: the room leaves the list at once
    act(server, bob, left, "/leave")
    after_leave = sliding(server, bob, {**one_list(0, 9), "room_subscriptions": subscribe})
    assert after_leave["lists"]["all"]["count"] == 2
    # a room left (not forgotten) is still sent to a subscription
    assert left in after_leave["rooms"]

    # forgetting changes the rows in place: a subscription no longer finds the room
    act(server, bob, left, "/forget")
    after_forget = sliding(server, bob, {**one_list(0, 9), "room_subscriptions": subscribe})
    assert left not in after_forget["rooms"]
    assert after_forget["lists"]["all"]["count"] == 2

    # purged: the room is in neither the list nor the subscriptions' answer
    reply = authed(
        admin, "DELETE", f"{server.url}/_synapse/admin/v2/rooms/{purged}", {"purge": True}
    )
    assert reply.status == 200, reply.body
    wait_for_deletion(server, admin, reply.json()["delete_id"])
    after_purge = sliding(server, bob, {**one_list(0, 9), "room_subscriptions": subscribe})
    assert after_purge["lists"]["all"]["count"] == 1
    assert set(after_purge["rooms"]) == {stays}


def test_a_logged_out_devices_positions_are_gone(server: RunningServer) -> None:
    alice = user(server, "alice")
    first = sliding(server, alice, one_list(0, 9))
    assert authed(alice, "POST", server.url + CLIENT + "/logout", {}).status == 200
    # the same device ID logged in again: what its last session was sent is not known
    again = login(server.url, alice.user_id[1:].split(":")[0], device_id=alice.device_id)
    assert again.device_id == alice.device_id
    reply = sliding_reply(server, again, one_list(0, 9), pos=first["pos"])
    assert reply.status == 400
    assert reply.json()["errcode"] == "M_UNKNOWN_POS"
