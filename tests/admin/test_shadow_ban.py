"""Shadow bans on both engines: the banned user's messages and state changes are answered
as sent and reach nobody; membership still works; lifting the ban restores delivery."""

from __future__ import annotations

from tests.admin.conftest import ADMIN, call, q, uid
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, register, send_text


def ban_path(user_id: str) -> str:
    return f"{ADMIN}/v1/users/{q(user_id)}/shadow_ban"


def timeline_bodies(server: RunningServer, who: Session, room_id: str) -> list[str]:
    chunk = authed(
        who, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/messages?dir=b&limit=50"
    ).json()["chunk"]
    return [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]


def test_a_shadow_banned_user_talks_to_nobody(server: RunningServer, admin: Session) -> None:
    quinn = register(server.url, "quinn")
    rae = register(server.url, "rae")
    room_id = create_room(server.url, rae, preset="public_chat")
    assert (
        authed(quinn, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/join", {}).status == 200
    )
    send_text(server.url, quinn, room_id, "before the ban")

    assert call(server, admin, "POST", ban_path(quinn.user_id)).json() == {}
    assert call(server, admin, "GET", f"{ADMIN}/v2/users/{q(quinn.user_id)}").json()[
        "shadow_banned"
    ]
    put = authed(
        quinn,
        "PUT",
        server.url + CLIENT + f"/rooms/{q(room_id)}/send/m.room.message/t1",
        {"msgtype": "m.text", "body": "spam"},
    )
    assert put.status == 200
    assert put.json()["event_id"].startswith("$")
    topic = authed(
        quinn,
        "PUT",
        server.url + CLIENT + f"/rooms/{q(room_id)}/state/m.room.topic/",
        {"topic": "spam topic"},
    )
    assert topic.status == 200 and topic.json()["event_id"].startswith("$")
    # nobody sees them, and the faked event is not there to fetch
    assert "spam" not in timeline_bodies(server, rae, room_id)
    assert "before the ban" in timeline_bodies(server, rae, room_id)
    fetched = authed(
        rae, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/event/{q(put.json()['event_id'])}"
    )
    assert fetched.status == 404
    state = authed(rae, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/state/m.room.topic/")
    assert state.status == 404
    # leaving is a membership change, which the ban does not touch
    assert (
        authed(quinn, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/leave", {}).status == 200
    )
    members = call(server, admin, "GET", f"{ADMIN}/v1/rooms/{q(room_id)}/members").json()
    assert quinn.user_id not in members["members"]

    assert call(server, admin, "DELETE", ban_path(quinn.user_id)).json() == {}
    assert (
        authed(quinn, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/join", {}).status == 200
    )
    send_text(server.url, quinn, room_id, "after the ban")
    assert "after the ban" in timeline_bodies(server, rae, room_id)


def test_refusals(server: RunningServer, admin: Session) -> None:
    sam = register(server.url, "sam")
    assert call(server, None, "POST", ban_path(sam.user_id)).errcode == "M_MISSING_TOKEN"
    assert call(server, sam, "POST", ban_path(sam.user_id)).errcode == "M_FORBIDDEN"
    unknown = call(server, admin, "POST", ban_path(uid("ghost")))
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    remote = call(server, admin, "DELETE", ban_path("@sam:elsewhere.example"))
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
