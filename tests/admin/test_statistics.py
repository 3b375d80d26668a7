"""Statistics and username availability through the admin API on both engines."""

from __future__ import annotations

from tests.admin.conftest import ADMIN, call, q
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, register, send_text

MEDIA = ADMIN + "/v1/statistics/users/media"


def upload(server: RunningServer, who: Session, data: bytes) -> None:
    reply = authed(who, "POST", server.url + "/_matrix/media/v3/upload?filename=f", data)
    assert reply.status == 200, reply.body


def test_media_per_user(server: RunningServer, admin: Session) -> None:
    uma = register(server.url, "stat_uma")
    vic = register(server.url, "stat_vic")
    authed(
        vic,
        "PUT",
        server.url + CLIENT + f"/profile/{q(vic.user_id)}/displayname",
        {"displayname": "Zed"},
    )
    upload(server, uma, b"x" * 10)
    upload(server, uma, b"y" * 5)
    upload(server, vic, b"z" * 100)

    body = call(server, admin, "GET", MEDIA + "?search_term=stat_").json()
    assert body == {
        "users": [
            {
                "user_id": uma.user_id,
                "displayname": "stat_uma",
                "media_count": 2,
                "media_length": 15,
            },
            {"user_id": vic.user_id, "displayname": "Zed", "media_count": 1, "media_length": 100},
        ],
        "total": 2,
    }
    by_length = call(server, admin, "GET", MEDIA + "?search_term=stat_&order_by=media_length&dir=b")
    assert [u["user_id"] for u in by_length.json()["users"]] == [vic.user_id, uma.user_id]
    # the display name matches too
    assert [
        u["user_id"] for u in call(server, admin, "GET", MEDIA + "?search_term=zed").json()["users"]
    ] == [vic.user_id]
    page = call(server, admin, "GET", MEDIA + "?search_term=stat_&limit=1").json()
    assert page["next_token"] == 1 and len(page["users"]) == 1
    assert (
        "next_token"
        not in call(server, admin, "GET", MEDIA + "?search_term=stat_&from=1&limit=1").json()
    )
    # a window of time with nothing uploaded
    assert (
        call(server, admin, "GET", MEDIA + "?search_term=stat_&from_ts=1&until_ts=2").json()[
            "total"
        ]
        == 0
    )

    for bad in (
        "order_by=size",
        "dir=x",
        "from=-1",
        "limit=ten",
        "search_term=",
        "from_ts=5&until_ts=5",
    ):
        reply = call(server, admin, "GET", f"{MEDIA}?{bad}")
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), bad
    assert call(server, uma, "GET", MEDIA).errcode == "M_FORBIDDEN"


def test_largest_rooms(server: RunningServer, admin: Session) -> None:
    wes = register(server.url, "stat_wes")
    big = create_room(server.url, wes)
    for n in range(15):
        send_text(server.url, wes, big, f"message {n} " + "padding " * 40)
    rooms = call(server, admin, "GET", ADMIN + "/v1/statistics/database/rooms").json()["rooms"]
    assert rooms[0]["room_id"] == big
    assert rooms[0]["estimated_size"] > 15 * 300
    assert len(rooms) <= 10
    sizes = [r["estimated_size"] for r in rooms]
    assert sizes == sorted(sizes, reverse=True)
    assert (
        call(server, wes, "GET", ADMIN + "/v1/statistics/database/rooms").errcode == "M_FORBIDDEN"
    )


def test_username_available(server: RunningServer, admin: Session) -> None:
    register(server.url, "stat_taken")
    path = ADMIN + "/v1/username_available?username="
    assert call(server, admin, "GET", path + "stat_free").json() == {"available": True}
    taken = call(server, admin, "GET", path + "stat_taken")
    assert (taken.status, taken.errcode) == (400, "M_USER_IN_USE")
    invalid = call(server, admin, "GET", path + q("no way!"))
    assert (invalid.status, invalid.errcode) == (400, "M_INVALID_USERNAME")
    missing = call(server, admin, "GET", ADMIN + "/v1/username_available")
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
