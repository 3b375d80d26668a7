"""The Purge History admin API over real HTTP on both engines: history before the point
leaves /messages, /context and sync while the room's state stays and the room goes on;
local events are kept (out of the timeline) unless `delete_local_events`; purging by
time; unread counts; a departed member's reach; the refusals."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    Session,
    authed,
    create_room,
    make_admin,
    register,
    send_text,
)

ADMIN = "/_synapse/admin/v1"


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "purger")


def purge(
    server: RunningServer, who: Session, room_id: str, body: dict[str, Any], event_id: str = ""
) -> Reply:
    path = f"{ADMIN}/purge_history/{quote(room_id)}"
    if event_id:
        path += "/" + quote(event_id)
    return authed(who, "POST", server.url + path, body)


def purged(
    server: RunningServer, admin: Session, room_id: str, body: dict[str, Any], event_id: str = ""
) -> None:
    reply = purge(server, admin, room_id, body, event_id)
    assert reply.status == 200, reply.body
    purge_id = reply.json()["purge_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = authed(admin, "GET", f"{server.url}{ADMIN}/purge_history_status/{purge_id}")
        assert status.status == 200, status.body
        if status.json()["status"] != "active":
            assert status.json() == {"status": "complete"}
            return
        time.sleep(0.05)
    raise AssertionError(f"purge {purge_id} did not finish")


def bodies(server: RunningServer, who: Session, room_id: str) -> list[str]:
    """The message bodies /messages gives from the end of the room, newest first."""
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=100"
    reply = authed(who, "GET", url)
    assert reply.status == 200, reply.body
    return [e["content"]["body"] for e in reply.json()["chunk"] if e["type"] == "m.room.message"]


def get_event(server: RunningServer, who: Session, room_id: str, event_id: str) -> Reply:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/event/{quote(event_id)}"
    return authed(who, "GET", url)


def sync(server: RunningServer, who: Session, since: str | None = None) -> dict[str, Any]:
    url = server.url + CLIENT + "/sync" + (f"?since={quote(since)}&timeout=0" if since else "")
    reply = authed(who, "GET", url)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def initial_sync_room(server: RunningServer, who: Session, room_id: str) -> dict[str, Any]:
    room: dict[str, Any] = sync(server, who)["rooms"]["join"][room_id]
    return room


def test_purge_up_to_an_event_cuts_the_history_and_keeps_the_room(
    server: RunningServer, admin: Session
) -> None:
    alice = register(server.url, "pa1")
    bob = register(server.url, "pb1")
    room_id = create_room(server.url, alice, name="Purged", preset="public_chat")
    assert authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {}).status == 200
    old = [send_text(server.url, alice, room_id, f"old {i}") for i in range(3)]
    point = send_text(server.url, alice, room_id, "point")
    send_text(server.url, bob, room_id, "after")

    purged(server, admin, room_id, {}, point)

    assert bodies(server, bob, room_id) == ["after", "point"]
    context = authed(
        bob, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/context/{quote(old[0])}"
    )
    assert context.status == 404, context.body
    # the state stays whole
    name = authed(bob, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.name/")
    assert name.status == 200 and name.json() == {"name": "Purged"}
    members = authed(bob, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/joined_members")
    assert set(members.json()["joined"]) == {alice.user_id, bob.user_id}
    synced = sync(server, bob)
    room = synced["rooms"]["join"][room_id]
    state_types = {e["type"] for e in room["state"]["events"]}
    timeline_types = {e["type"] for e in room["timeline"]["events"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= (
        state_types | timeline_types
    )
    assert [
        e["content"]["body"] for e in room["timeline"]["events"] if e["type"] == "m.room.message"
    ] == ["point", "after"]
    # the room goes on
    send_text(server.url, alice, room_id, "new")
    assert bodies(server, bob, room_id) == ["new", "after", "point"]
    timeline = sync(server, bob, synced["next_batch"])["rooms"]["join"][room_id]["timeline"]
    assert [e["content"]["body"] for e in timeline["events"]] == ["new"]
    # without delete_local_events a local message is kept, out of the timeline
    assert get_event(server, bob, room_id, old[0]).status == 200


def test_delete_local_events_deletes_them(server: RunningServer, admin: Session) -> None:
    alice = register(server.url, "pa2")
    room_id = create_room(server.url, alice, name="Deleted")
    old = send_text(server.url, alice, room_id, "old")
    point = send_text(server.url, alice, room_id, "point")

    purged(server, admin, room_id, {"purge_up_to_event_id": point, "delete_local_events": True})

    assert bodies(server, alice, room_id) == ["point"]
    assert get_event(server, alice, room_id, old).status == 404
    name = authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state")
    assert {e["type"] for e in name.json()} >= {"m.room.create", "m.room.name", "m.room.member"}
    send_text(server.url, alice, room_id, "new")
    assert bodies(server, alice, room_id) == ["new", "point"]


def test_purge_up_to_a_time(server: RunningServer, admin: Session) -> None:
    alice = register(server.url, "pa3")
    room_id = create_room(server.url, alice)
    for i in range(3):
        send_text(server.url, alice, room_id, f"before {i}")
    time.sleep(0.05)
    ts = int(time.time() * 1000)
    time.sleep(0.05)
    send_text(server.url, alice, room_id, "since")

    purged(server, admin, room_id, {"purge_up_to_ts": ts})

    assert bodies(server, alice, room_id) == ["since"]


def test_purged_messages_leave_the_unread_counts(server: RunningServer, admin: Session) -> None:
    alice = register(server.url, "pa4")
    bob = register(server.url, "pb4")
    room_id = create_room(server.url, alice, preset="public_chat")
    assert authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {}).status == 200
    for i in range(3):
        send_text(server.url, alice, room_id, f"unread {i}")
    point = send_text(server.url, alice, room_id, "point")
    synced = sync(server, bob)
    assert synced["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 4

    purged(server, admin, room_id, {}, point)
    send_text(server.url, alice, room_id, "new")

    room = sync(server, bob, synced["next_batch"])["rooms"]["join"][room_id]
    # as Synapse: what is left is the point and the new message
    assert room["unread_notifications"]["notification_count"] == 2


def test_a_departed_member_still_reads_only_up_to_the_departure(
    server: RunningServer, admin: Session
) -> None:
    alice = register(server.url, "pa5")
    bob = register(server.url, "pb5")
    room_id = create_room(
        server.url,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    assert authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {}).status == 200
    send_text(server.url, alice, room_id, "while bob was here")
    assert authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/leave", {}).status
    send_text(server.url, alice, room_id, "secret")
    point = send_text(server.url, alice, room_id, "point")

    purged(server, admin, room_id, {}, point)

    assert "secret" not in bodies(server, bob, room_id)
    assert "point" not in bodies(server, bob, room_id)


def test_refusals(server: RunningServer, admin: Session) -> None:
    alice = register(server.url, "pa6")
    room_id = create_room(server.url, alice)
    event_id = send_text(server.url, alice, room_id, "hello")
    other_room = create_room(server.url, alice)
    other_event = send_text(server.url, alice, other_room, "elsewhere")

    def refused(reply: Reply, status: int, errcode: str) -> None:
        assert reply.status == status, reply.body
        assert reply.json()["errcode"] == errcode

    refused(purge(server, alice, room_id, {}, event_id), 403, "M_FORBIDDEN")
    refused(purge(server, admin, "!nowhere:test.localhost", {}, event_id), 404, "M_NOT_FOUND")
    refused(purge(server, admin, room_id, {}, other_event), 400, "M_UNKNOWN")
    refused(purge(server, admin, room_id, {}, "$unknown"), 404, "M_NOT_FOUND")
    refused(purge(server, admin, room_id, {}), 400, "M_BAD_JSON")
    refused(purge(server, admin, room_id, {"purge_up_to_ts": "soon"}), 400, "M_BAD_JSON")
    status = f"{server.url}{ADMIN}/purge_history_status/"
    refused(authed(admin, "GET", status + "nosuchpurge"), 404, "M_NOT_FOUND")
    refused(authed(alice, "GET", status + "nosuchpurge"), 403, "M_FORBIDDEN")
    # nothing was purged by the refusals
    assert bodies(server, alice, room_id) == ["hello"]
