"""POST /rooms/{roomId}/upgrade over real HTTP on both engines: the replacement room, what
it copies, the moved aliases, the tombstone and the silenced old room, and every error."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed

CLIENT = "/_matrix/client/v3"
SERVER_NAME = "test.localhost"
_names = itertools.count()


def ok(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def refused(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def state(server: RunningServer, session: Session, room_id: str, key: str) -> dict[str, Any]:
    return ok(authed(session, "GET", f"{server.url}{CLIENT}/rooms/{room_id}/state/{key}"))


def upgrade(server: RunningServer, session: Session, room_id: str, body: Any) -> Reply:
    return authed(session, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/upgrade", body)


def can_send(server: RunningServer, session: Session, room_id: str) -> bool:
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/t{next(_names)}"
    return authed(session, "PUT", url, {"msgtype": "m.text", "body": "hi"}).status == 200


@pytest.mark.parametrize(("old", "new"), [("1", "10"), ("6", "11"), ("10", "12"), ("12", "12")])
def test_upgrade(
    server: RunningServer, alice: Session, bob: Session, carol: Session, old: str, new: str
) -> None:
    name = f"upgraded{next(_names)}"
    alias = f"#{name}:{SERVER_NAME}"
    created = ok(
        authed(
            alice,
            "POST",
            server.url + CLIENT + "/createRoom",
            {
                "room_version": old,
                "preset": "public_chat",
                "visibility": "public",
                "name": "Old name",
                "topic": "Old topic",
                "room_alias_name": name,
            },
        )
    )
    old_room = created["room_id"]
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/join/{old_room}", {}))
    ok(
        authed(
            alice, "POST", f"{server.url}{CLIENT}/rooms/{old_room}/ban", {"user_id": carol.user_id}
        )
    )
    old_levels = state(server, alice, old_room, "m.room.power_levels")

    new_room = ok(upgrade(server, alice, old_room, {"new_version": new}))["replacement_room"]
    assert new_room != old_room

    create = state(server, alice, new_room, "m.room.create")
    assert create["room_version"] == new
    assert create["predecessor"]["room_id"] == old_room
    old_state = ok(authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{old_room}/state"))
    (tombstone_event,) = [e for e in old_state if e["type"] == "m.room.tombstone"]
    if new == "12":
        # the new room's ID hashes its create event, made before the tombstone could be
        assert "event_id" not in create["predecessor"]
    else:
        # clients follow the predecessor link to the tombstone that replaced the old room
        assert create["predecessor"]["event_id"] == tombstone_event["event_id"]
    assert state(server, alice, new_room, "m.room.name") == {"name": "Old name"}
    assert state(server, alice, new_room, "m.room.topic") == {"topic": "Old topic"}
    assert state(server, alice, new_room, "m.room.join_rules") == {"join_rule": "public"}
    new_levels = state(server, alice, new_room, "m.room.power_levels")
    expected_users = dict(old_levels["users"])
    if new == "12":
        # rooms/v12: the creator's power comes from the create event, not `users`
        expected_users.pop(alice.user_id, None)
    assert new_levels["users"] == expected_users
    assert new_levels["events"] == old_levels["events"]
    # bans follow the room; memberships do not
    assert state(server, alice, new_room, f"m.room.member/{carol.user_id}")["membership"] == "ban"
    refused(
        authed(
            bob, "GET", f"{server.url}{CLIENT}/rooms/{new_room}/state/m.room.member/{bob.user_id}"
        ),
        403,
        "M_FORBIDDEN",
    )
    # the alias and the canonical alias moved
    resolved = ok(request("GET", f"{server.url}{CLIENT}/directory/room/%23{name}:{SERVER_NAME}"))
    assert resolved["room_id"] == new_room
    assert state(server, alice, new_room, "m.room.canonical_alias") == {"alias": alias}
    assert "alias" not in state(server, alice, old_room, "m.room.canonical_alias")

    # the tombstone comes first (clients take the first event after their last sync), then
    # the old room's canonical alias loses the moved alias and its members fall silent
    latest = ok(
        authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{old_room}/messages?dir=b&limit=3")
    )["chunk"]
    assert [e["type"] for e in reversed(latest)] == [
        "m.room.tombstone",
        "m.room.canonical_alias",
        "m.room.power_levels",
    ]
    # the old room points at the new one and ordinary members fall silent there
    tombstone = state(server, alice, old_room, "m.room.tombstone")
    assert tombstone["replacement_room"] == new_room
    assert tombstone["body"]
    restricted = state(server, alice, old_room, "m.room.power_levels")
    assert restricted["events_default"] >= 50
    assert restricted["invite"] >= 50
    assert not can_send(server, bob, old_room)
    assert can_send(server, alice, old_room)
    # and members can follow
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/join/%23{name}:{SERVER_NAME}", {}))
    assert can_send(server, bob, new_room)


def test_upgrade_to_v12_with_additional_creators(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    old_room = ok(
        authed(
            alice,
            "POST",
            server.url + CLIENT + "/createRoom",
            {
                "room_version": "11",
                "preset": "public_chat",
                "creation_content": {"type": "m.space"},
            },
        )
    )["room_id"]
    body = {"new_version": "12", "additional_creators": [bob.user_id]}
    new_room = ok(upgrade(server, alice, old_room, body))["replacement_room"]
    create = state(server, alice, new_room, "m.room.create")
    assert create["additional_creators"] == [bob.user_id]
    assert create["type"] == "m.space"
    users = state(server, alice, new_room, "m.room.power_levels")["users"]
    assert alice.user_id not in users and bob.user_id not in users


def test_upgrade_errors(
    server: RunningServer, alice: Session, bob: Session, carol: Session
) -> None:
    room_id = ok(
        authed(alice, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    )["room_id"]
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/join/{room_id}", {}))
    refused(
        upgrade(server, alice, room_id, {"new_version": "999"}), 400, "M_UNSUPPORTED_ROOM_VERSION"
    )
    refused(upgrade(server, alice, room_id, {}), 400, "M_MISSING_PARAM")
    refused(upgrade(server, alice, room_id, {"new_version": 11}), 400, "M_BAD_JSON")
    refused(
        authed(alice, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/upgrade", b"{"),
        400,
        "M_NOT_JSON",
    )
    refused(
        upgrade(server, alice, room_id, {"new_version": "12", "additional_creators": ["bob"]}),
        400,
        "M_INVALID_PARAM",
    )
    # a member without the tombstone's power level, a non-member, an unknown room
    refused(upgrade(server, bob, room_id, {"new_version": "11"}), 403, "M_FORBIDDEN")
    refused(upgrade(server, carol, room_id, {"new_version": "11"}), 403, "M_FORBIDDEN")
    refused(
        upgrade(server, alice, f"!nosuchroom:{SERVER_NAME}", {"new_version": "11"}),
        404,
        "M_NOT_FOUND",
    )
    refused(
        request("POST", f"{server.url}{CLIENT}/rooms/{room_id}/upgrade", {"new_version": "11"}),
        401,
        "M_MISSING_TOKEN",
    )
    # nothing was changed by the refusals
    refused(
        authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.tombstone"),
        404,
        "M_NOT_FOUND",
    )
    assert can_send(server, bob, room_id)


def test_members_keep_direct_tags_and_push_rules(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    created = ok(
        authed(alice, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    )
    old_room = created["room_id"]
    ok(authed(bob, "POST", f"{server.url}{CLIENT}/join/{old_room}", {}))
    user = f"{server.url}{CLIENT}/user/{bob.user_id}"
    direct = {alice.user_id: [old_room]}
    ok(authed(bob, "PUT", f"{user}/account_data/m.direct", direct))
    ok(authed(bob, "PUT", f"{user}/rooms/{old_room}/tags/u.work", {"order": 0.5}))
    rules = f"{server.url}{CLIENT}/pushrules/global"
    ok(authed(bob, "PUT", f"{rules}/room/{old_room}", {"actions": ["notify"]}))
    condition = {"kind": "event_match", "key": "room_id", "pattern": old_room}
    body = {"actions": ["dont_notify"], "conditions": [condition]}
    ok(authed(bob, "PUT", f"{rules}/override/quiet{old_room}", body))

    new_room = ok(upgrade(server, alice, old_room, {"new_version": "10"}))["replacement_room"]

    # as Synapse (SyTest "/upgrade preserves direct room state", "local user has push
    # rules copied to upgraded room"): the member finds the new room where the old one was
    got = ok(authed(bob, "GET", f"{user}/account_data/m.direct"))
    assert got == {alice.user_id: [old_room, new_room]}
    tags = ok(authed(bob, "GET", f"{user}/rooms/{new_room}/tags"))
    assert tags == {"tags": {"u.work": {"order": 0.5}}}
    room_rule = ok(authed(bob, "GET", f"{rules}/room/{new_room}"))
    assert room_rule["actions"] == ["notify"]
    override = ok(authed(bob, "GET", f"{rules}/override/quiet{new_room}"))
    assert override["conditions"] == [{**condition, "pattern": new_room}]
    # the old room's rules stay
    ok(authed(bob, "GET", f"{rules}/room/{old_room}"))
