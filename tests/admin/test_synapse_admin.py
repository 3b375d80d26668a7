"""The requests synapse-admin (the React admin app) makes for its lists and pages, as its
data provider builds them (react-admin's `from`/`limit`/`order_by`/`dir` on every list and
reference), against Ranvier on both engines; and the forward extremities page."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import insert

from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import open_database
from ranvier.storage.events import room_forward_extremities
from tests.admin.conftest import ADMIN, call, q
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, register, send_text

PAGE = "from=0&limit=10"


def get(server: RunningServer, admin: Session, path: str) -> Any:
    reply = call(server, admin, "GET", path)
    assert reply.status == 200, (path, reply.body)
    return reply.json()


def test_lists(server: RunningServer, admin: Session) -> None:
    xia = register(server.url, "sa_xia")
    room_id = create_room(server.url, xia, name="Admin app room")
    upload = authed(xia, "POST", server.url + "/_matrix/media/v3/upload?filename=p.png", b"png")
    assert upload.status == 200

    users = get(
        server,
        admin,
        f"{ADMIN}/v2/users?{PAGE}&guests=false&deactivated=false&locked=false&order_by=name&dir=f&name=sa_",
    )
    assert [u["name"] for u in users["users"]] == [xia.user_id] and users["total"] == 1
    rooms = get(
        server, admin, f"{ADMIN}/v1/rooms?{PAGE}&search_term=Admin%20app&order_by=name&dir=f"
    )
    assert rooms["total_rooms"] == 1 and rooms["rooms"][0]["room_id"] == room_id
    stats = get(
        server,
        admin,
        f"{ADMIN}/v1/statistics/users/media?{PAGE}&search_term=sa_&order_by=media_length&dir=b",
    )
    assert stats["users"][0]["user_id"] == xia.user_id and stats["total"] == 1
    reports = get(server, admin, f"{ADMIN}/v1/event_reports?{PAGE}&order_by=received_ts&dir=b")
    assert "event_reports" in reports and "total" in reports
    destinations = get(
        server, admin, f"{ADMIN}/v1/federation/destinations?{PAGE}&order_by=destination&dir=f"
    )
    assert destinations["total"] == len(destinations["destinations"])
    tokens = get(server, admin, f"{ADMIN}/v1/registration_tokens?{PAGE}&order_by=token&dir=f")
    assert tokens == {"registration_tokens": []}

    # the references of a user's page: each with react-admin's paging and sort, which the
    # server ignores where Synapse does
    ref = f"?{PAGE}&order_by=id&dir=f"
    uid = q(xia.user_id)
    devices = get(server, admin, f"{ADMIN}/v2/users/{uid}/devices{ref}")
    assert [d["device_id"] for d in devices["devices"]] == [xia.device_id] and devices["total"] == 1
    assert get(server, admin, f"{ADMIN}/v1/users/{uid}/joined_rooms{ref}") == {
        "joined_rooms": [room_id],
        "total": 1,
    }
    assert get(server, admin, f"{ADMIN}/v1/users/{uid}/pushers{ref}") == {"pushers": [], "total": 0}
    media = get(server, admin, f"{ADMIN}/v1/users/{uid}/media?{PAGE}&order_by=created_ts&dir=f")
    assert media["total"] == 1
    assert xia.device_id in get(server, admin, f"{ADMIN}/v1/whois/{uid}")["devices"]
    # and of a room's page
    assert get(server, admin, f"{ADMIN}/v1/rooms/{room_id}/members{ref}")["total"] == 1
    state = get(server, admin, f"{ADMIN}/v1/rooms/{room_id}/state{ref}")["state"]
    assert {e["type"] for e in state} >= {"m.room.create", "m.room.name"}
    extremities = get(server, admin, f"{ADMIN}/v1/rooms/{room_id}/forward_extremities{ref}")
    assert extremities["count"] == 1 == len(extremities["results"])

    # the device page deletes one of the user's devices by its user_id and device_id
    reply = call(server, admin, "DELETE", f"{ADMIN}/v2/users/{uid}/devices/{xia.device_id}")
    assert reply.status == 200
    assert authed(xia, "GET", server.url + CLIENT + "/account/whoami").status == 401
    # the server notices page
    notice = {"user_id": xia.user_id, "content": {"msgtype": "m.text", "body": "hello"}}
    assert call(server, admin, "POST", ADMIN + "/v1/send_server_notice", notice).status == 200


def add_extremity(database: dict[str, Any], room_id: str, event_id: str) -> None:
    """What a fork in the DAG leaves (two servers sending at once): a second extremity."""

    async def add() -> None:
        db = await open_database(DatabaseConfig(**database))
        try:
            async with db.transaction() as conn:
                await conn.execute(
                    insert(room_forward_extremities).values(room_id=room_id, event_id=event_id)
                )
        finally:
            await db.close()

    asyncio.run(add())


def test_forward_extremities(
    server: RunningServer, admin: Session, module_database: dict[str, Any]
) -> None:
    yan = register(server.url, "sa_yan")
    room_id = create_room(server.url, yan)
    first = send_text(server.url, yan, room_id, "first")
    last = send_text(server.url, yan, room_id, "last")
    path = f"{ADMIN}/v1/rooms/{q(room_id)}/forward_extremities"
    one = get(server, admin, path)
    assert one["count"] == 1
    newest = one["results"][0]
    assert newest["event_id"] == last
    assert isinstance(newest["state_group"], int) and newest["depth"] > 1
    assert newest["received_ts"] > 0
    assert call(server, admin, "DELETE", path).json() == {"deleted": 0}

    add_extremity(module_database, room_id, first)
    two = get(server, admin, path)
    assert [r["event_id"] for r in two["results"]] == [last, first]
    assert call(server, admin, "DELETE", path).json() == {"deleted": 1}
    assert [r["event_id"] for r in get(server, admin, path)["results"]] == [last]
    # the room goes on from the newest
    after = send_text(server.url, yan, room_id, "after")
    event = authed(yan, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/event/{q(after)}")
    assert event.status == 200
    assert [r["event_id"] for r in get(server, admin, path)["results"]] == [after]

    assert call(server, yan, "GET", path).errcode == "M_FORBIDDEN"
    unknown = call(
        server, admin, "GET", f"{ADMIN}/v1/rooms/{q('!nope:test.localhost')}/forward_extremities"
    )
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    bad = call(server, admin, "DELETE", f"{ADMIN}/v1/rooms/nonsense/forward_extremities")
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")


def test_timestamp_to_event(server: RunningServer, admin: Session) -> None:
    zed = register(server.url, "sa_zed")
    room_id = create_room(server.url, zed)
    before = int(time.time() * 1000)
    time.sleep(0.01)
    message = send_text(server.url, zed, room_id, "at a time")
    stamp = event_ts(server, zed, room_id, message)
    path = f"{ADMIN}/v1/rooms/{q(room_id)}/timestamp_to_event"
    # the admin is not in the room and still finds it
    assert get(server, admin, f"{path}?ts={before}&dir=f") == {
        "event_id": message,
        "origin_server_ts": stamp,
    }
    assert get(server, admin, f"{path}?ts={stamp + 10_000}&dir=b")["event_id"] == message
    # nothing after the newest event
    after = call(server, admin, "GET", f"{path}?ts={stamp + 10_000}")
    assert (after.status, after.errcode) == (404, "M_NOT_FOUND")
    assert call(server, admin, "GET", path).errcode == "M_MISSING_PARAM"
    for bad in ("ts=soon", "ts=1&dir=up"):
        reply = call(server, admin, "GET", f"{path}?{bad}")
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), bad
    assert call(server, zed, "GET", f"{path}?ts=1").errcode == "M_FORBIDDEN"
    unknown = call(
        server,
        admin,
        "GET",
        f"{ADMIN}/v1/rooms/{q('!nope:test.localhost')}/timestamp_to_event?ts=1",
    )
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")


def event_ts(server: RunningServer, who: Session, room_id: str, event_id: str) -> int:
    reply = authed(who, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/event/{q(event_id)}")
    stamp: int = reply.json()["origin_server_ts"]
    return stamp
