"""The media admin API (Synapse's paths) and `ranvier media`, over real HTTP and the real
command line, on both engines: quarantine by ID, room and user, protection, deletion by ID,
by age and by user, and listing a user's media."""

from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from tests.integration.client import Reply
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed, make_admin, register
from tests.integration.media_helpers import download, image_bytes, thumbnail, uploaded

ADMIN = "/_synapse/admin/v1"
CLIENT = "/_matrix/client/v3"
SERVER_NAME = "test.localhost"


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "mediaadmin")


_counter = iter(range(1_000_000))


@pytest.fixture
def alice(server: RunningServer) -> Session:
    return register(server.url, f"alice{next(_counter)}")


def u(value: str) -> str:
    return quote(value, safe="")


def admin_call(server: RunningServer, session: Session, method: str, path: str) -> Reply:
    return authed(session, method, server.url + ADMIN + path, {} if method == "POST" else None)


def status_of(server: RunningServer, session: Session, media: tuple[str, str]) -> int:
    return download(server.url, session, *media).status


def ranvier_media(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ranvier.cli", "media", *args, "-c", str(server.config_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/media/quarantine/test.localhost/abc"),
        ("POST", "/media/unquarantine/test.localhost/abc"),
        ("POST", "/media/protect/abc"),
        ("POST", "/media/unprotect/abc"),
        ("GET", "/media/test.localhost/abc"),
        ("DELETE", "/media/test.localhost/abc"),
        ("POST", "/media/delete?before_ts=1"),
        ("POST", "/room/!r:test.localhost/media/quarantine"),
        ("GET", "/room/!r:test.localhost/media"),
        ("POST", "/user/@a:test.localhost/media/quarantine"),
        ("GET", "/users/@a:test.localhost/media"),
        ("DELETE", "/users/@a:test.localhost/media"),
    ],
)
def test_only_server_admins_may_use_the_media_admin_api(
    server: RunningServer, alice: Session, method: str, path: str
) -> None:
    reply = admin_call(server, alice, method, path)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


# --- quarantine -------------------------------------------------------------------------


def test_quarantined_media_is_not_served_until_released(
    server: RunningServer, admin: Session, alice: Session
) -> None:
    media = uploaded(server.url, alice, image_bytes("PNG", 200, 200), "image/png")
    reply = admin_call(server, admin, "POST", f"/media/quarantine/{media[0]}/{media[1]}")
    assert (reply.status, reply.json()) == (200, {})
    reply = download(server.url, alice, *media)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = thumbnail(server.url, alice, *media, "width=32&height=32&method=crop")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    info = admin_call(server, admin, "GET", f"/media/{media[0]}/{media[1]}").json()["media_info"]
    assert info["quarantined_by"] == admin.user_id

    reply = admin_call(server, admin, "POST", f"/media/unquarantine/{media[0]}/{media[1]}")
    assert (reply.status, reply.json()) == (200, {})
    assert status_of(server, alice, media) == 200


def test_protected_media_is_never_quarantined(
    server: RunningServer, admin: Session, alice: Session
) -> None:
    protected = uploaded(server.url, alice, b"protected " + str(next(_counter)).encode())
    other = uploaded(server.url, alice, b"other")
    assert admin_call(server, admin, "POST", f"/media/protect/{protected[1]}").status == 200
    admin_call(server, admin, "POST", f"/media/quarantine/{protected[0]}/{protected[1]}")
    assert status_of(server, alice, protected) == 200
    reply = admin_call(server, admin, "POST", f"/user/{u(alice.user_id)}/media/quarantine")
    assert (reply.status, reply.json()) == (200, {"num_quarantined": 1})
    assert status_of(server, alice, protected) == 200
    assert status_of(server, alice, other) == 404
    # unprotected, it can be
    assert admin_call(server, admin, "POST", f"/media/unprotect/{protected[1]}").status == 200
    admin_call(server, admin, "POST", f"/media/quarantine/{protected[0]}/{protected[1]}")
    assert status_of(server, alice, protected) == 404


def test_protecting_unknown_media_is_not_found(server: RunningServer, admin: Session) -> None:
    for action in ("protect", "unprotect"):
        reply = admin_call(server, admin, "POST", f"/media/{action}/unknownMedia")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


def test_quarantining_a_users_media(server: RunningServer, admin: Session, alice: Session) -> None:
    media = [uploaded(server.url, alice, f"file {i}".encode()) for i in range(3)]
    bystander = register(server.url, f"carol{next(_counter)}")
    theirs = uploaded(server.url, bystander, b"file 0")
    reply = admin_call(server, admin, "POST", f"/user/{u(alice.user_id)}/media/quarantine")
    assert (reply.status, reply.json()) == (200, {"num_quarantined": 3})
    assert [status_of(server, alice, m) for m in media] == [404, 404, 404]
    # the same bytes uploaded by someone else are their own media
    assert status_of(server, alice, theirs) == 200
    # already quarantined media is not counted twice
    reply = admin_call(server, admin, "POST", f"/user/{u(alice.user_id)}/media/quarantine")
    assert reply.json() == {"num_quarantined": 0}


def create_room_with_media(
    server: RunningServer, session: Session, uris: list[str], remote: str
) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", {})
    room_id: str = reply.json()["room_id"]
    contents = [
        {"msgtype": "m.image", "body": "a.png", "url": uris[0]},
        {
            "msgtype": "m.video",
            "body": "b.mp4",
            "url": uris[1],
            "info": {"thumbnail_url": uris[2]},
        },
        {"msgtype": "m.file", "body": "c", "file": {"url": remote, "v": "v2"}},
        {"msgtype": "m.text", "body": "no media here"},
    ]
    for i, content in enumerate(contents):
        path = f"/rooms/{u(room_id)}/send/m.room.message/t{next(_counter)}{i}"
        assert authed(session, "PUT", server.url + CLIENT + path, content).status == 200
    return room_id


def test_listing_and_quarantining_a_rooms_media(
    server: RunningServer, admin: Session, alice: Session
) -> None:
    media = [uploaded(server.url, alice, f"room file {i}".encode()) for i in range(3)]
    uris = [f"mxc://{s}/{m}" for s, m in media]
    remote = "mxc://elsewhere.example/remoteMedia"
    room_id = create_room_with_media(server, alice, uris, remote)
    elsewhere = uploaded(server.url, alice, b"not in the room")

    reply = admin_call(server, admin, "GET", f"/room/{u(room_id)}/media")
    assert reply.status == 200
    assert sorted(reply.json()["local"]) == sorted(uris)
    assert reply.json()["remote"] == [remote]

    reply = admin_call(server, admin, "POST", f"/room/{u(room_id)}/media/quarantine")
    assert (reply.status, reply.json()) == (200, {"num_quarantined": 3})
    assert [status_of(server, alice, m) for m in media] == [404, 404, 404]
    assert status_of(server, alice, elsewhere) == 200
    # Synapse's older path does the same
    reply = admin_call(server, admin, "POST", f"/quarantine_media/{u(room_id)}")
    assert (reply.status, reply.json()) == (200, {"num_quarantined": 0})


def test_an_unknown_room_is_not_found(server: RunningServer, admin: Session) -> None:
    for method, path in (
        ("GET", "/room/!nothere:test.localhost/media"),
        ("POST", "/room/!nothere:test.localhost/media/quarantine"),
    ):
        reply = admin_call(server, admin, method, path)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


# --- deletion ---------------------------------------------------------------------------


def test_deleting_media_by_id(server: RunningServer, admin: Session, alice: Session) -> None:
    data = image_bytes("PNG", 300, 300)
    media = uploaded(server.url, alice, data, "image/png")
    twin = uploaded(server.url, alice, data, "image/png")
    assert thumbnail(server.url, alice, *media, "width=32&height=32&method=crop").status == 200

    reply = admin_call(server, admin, "DELETE", f"/media/{media[0]}/{media[1]}")
    assert (reply.status, reply.json()) == (200, {"deleted_media": [media[1]], "total": 1})
    assert status_of(server, alice, media) == 404
    reply = thumbnail(server.url, alice, *media, "width=32&height=32&method=crop")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    # the file is shared with other media of the same bytes, which stays whole
    assert download(server.url, alice, *twin).body == data

    reply = admin_call(server, admin, "DELETE", f"/media/{media[0]}/{media[1]}")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = admin_call(server, admin, "DELETE", f"/media/elsewhere.example/{media[1]}")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


def test_deleting_media_unused_since_a_time(
    server: RunningServer, admin: Session, alice: Session
) -> None:
    small = uploaded(server.url, alice, b"tiny")
    big = uploaded(server.url, alice, b"\x07" * 5000)
    avatar = uploaded(server.url, alice, image_bytes("PNG", 64, 64), "image/png")
    protected = uploaded(server.url, alice, b"\x08" * 5000)
    quarantined = uploaded(server.url, alice, b"\x09" * 5000)
    profile = f"{CLIENT}/profile/{u(alice.user_id)}/avatar_url"
    body = {"avatar_url": f"mxc://{avatar[0]}/{avatar[1]}"}
    assert authed(alice, "PUT", server.url + profile, body).status == 200
    admin_call(server, admin, "POST", f"/media/protect/{protected[1]}")
    admin_call(server, admin, "POST", f"/media/quarantine/{quarantined[0]}/{quarantined[1]}")
    time.sleep(0.01)
    cutoff = int(time.time() * 1000)
    time.sleep(0.01)
    newer = uploaded(server.url, alice, b"\x0a" * 5000)

    reply = admin_call(server, admin, "POST", f"/media/delete?before_ts={cutoff}&size_gt=100")
    assert reply.status == 200
    deleted = reply.json()["deleted_media"]
    assert reply.json()["total"] == len(deleted)
    assert big[1] in deleted
    for kept in (small, avatar, protected, quarantined, newer):
        assert kept[1] not in deleted
    assert status_of(server, alice, big) == 404
    assert status_of(server, alice, small) == 200

    # avatars go too when asked
    reply = admin_call(
        server, admin, "POST", f"/media/delete?before_ts={cutoff}&keep_profiles=false"
    )
    deleted = reply.json()["deleted_media"]
    assert small[1] in deleted and avatar[1] in deleted
    assert protected[1] not in deleted and newer[1] not in deleted
    assert status_of(server, alice, newer) == 200


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ("", "M_MISSING_PARAM"),
        ("?before_ts=soon", "M_INVALID_PARAM"),
        ("?before_ts=-1", "M_INVALID_PARAM"),
        ("?before_ts=1&size_gt=-1", "M_INVALID_PARAM"),
        ("?before_ts=1&keep_profiles=maybe", "M_INVALID_PARAM"),
    ],
)
def test_deleting_old_media_needs_good_parameters(
    server: RunningServer, admin: Session, query: str, errcode: str
) -> None:
    reply = admin_call(server, admin, "POST", "/media/delete" + query)
    assert (reply.status, reply.errcode) == (400, errcode)


# --- a user's media ---------------------------------------------------------------------


def test_listing_a_users_media(server: RunningServer, admin: Session, alice: Session) -> None:
    names = ["b.txt", "a.txt", "c.txt"]
    media = [
        uploaded(server.url, alice, name.encode() * (i + 1), "text/plain", name)
        for i, name in enumerate(names)
    ]
    path = f"/users/{u(alice.user_id)}/media"
    reply = admin_call(server, admin, "GET", path)
    assert reply.status == 200
    body = reply.json()
    assert body["total"] == 3 and "next_token" not in body
    assert [m["media_id"] for m in body["media"]] == [m[1] for m in media]
    first = body["media"][0]
    assert first["upload_name"] == "b.txt"
    assert (first["media_type"], first["media_length"]) == ("text/plain", 5)
    assert first["quarantined_by"] is None and first["safe_from_quarantine"] is False
    assert isinstance(first["created_ts"], int)

    reply = admin_call(server, admin, "GET", path + "?limit=2")
    assert len(reply.json()["media"]) == 2 and reply.json()["next_token"] == 2
    reply = admin_call(server, admin, "GET", path + "?from=2&limit=2")
    assert [m["media_id"] for m in reply.json()["media"]] == [media[2][1]]
    assert "next_token" not in reply.json()

    reply = admin_call(server, admin, "GET", path + "?order_by=upload_name&dir=b")
    assert [m["upload_name"] for m in reply.json()["media"]] == ["c.txt", "b.txt", "a.txt"]
    reply = admin_call(server, admin, "GET", path + "?order_by=media_length")
    assert [m["media_length"] for m in reply.json()["media"]] == [5, 10, 15]


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ("?limit=-1", "M_INVALID_PARAM"),
        ("?from=-1", "M_INVALID_PARAM"),
        ("?order_by=colour", "M_INVALID_PARAM"),
        ("?dir=up", "M_INVALID_PARAM"),
    ],
)
def test_listing_a_users_media_needs_good_parameters(
    server: RunningServer, admin: Session, alice: Session, query: str, errcode: str
) -> None:
    reply = admin_call(server, admin, "GET", f"/users/{u(alice.user_id)}/media{query}")
    assert (reply.status, reply.errcode) == (400, errcode)


def test_a_users_media_needs_a_local_user_who_exists(server: RunningServer, admin: Session) -> None:
    for method in ("GET", "DELETE"):
        reply = admin_call(server, admin, method, f"/users/{u('@nobody:test.localhost')}/media")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        reply = admin_call(server, admin, method, f"/users/{u('@x:elsewhere.example')}/media")
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


def test_deleting_a_users_media(server: RunningServer, admin: Session, alice: Session) -> None:
    media = [uploaded(server.url, alice, f"doomed {i}".encode()) for i in range(3)]
    path = f"/users/{u(alice.user_id)}/media"
    reply = admin_call(server, admin, "DELETE", path + "?limit=2")
    assert reply.status == 200
    assert reply.json() == {"deleted_media": [media[0][1], media[1][1]], "total": 2}
    assert [status_of(server, alice, m) for m in media] == [404, 404, 200]
    assert admin_call(server, admin, "GET", path).json()["total"] == 1


# --- the command line -------------------------------------------------------------------


def test_ranvier_media_quarantine_and_delete(server: RunningServer, alice: Session) -> None:
    media = [uploaded(server.url, alice, f"cli {i}".encode()) for i in range(2)]

    done = ranvier_media(server, "quarantine", "--media-id", media[0][1])
    assert done.returncode == 0, done.stderr
    assert status_of(server, alice, media[0]) == 404
    done = ranvier_media(server, "unquarantine", "--media-id", f"mxc://{media[0][0]}/{media[0][1]}")
    assert done.returncode == 0, done.stderr
    assert status_of(server, alice, media[0]) == 200

    done = ranvier_media(server, "quarantine", "--user", alice.user_id)
    assert done.returncode == 0, done.stderr
    # progress, then the summary
    assert "quarantined 2/2" in done.stdout
    assert done.stdout.strip().endswith(f"Quarantined 2 media of {alice.user_id}")
    assert [status_of(server, alice, m) for m in media] == [404, 404]

    done = ranvier_media(server, "delete", "--user", alice.user_id)
    assert done.returncode == 0, done.stderr
    assert f"deleted 1/2: {media[0][1]}" in done.stdout
    assert f"deleted 2/2: {media[1][1]}" in done.stdout

    done = ranvier_media(server, "delete", "--media-id", media[0][1])
    assert done.returncode == 1
    assert "not found" in done.stderr.lower()


def test_ranvier_media_delete_before_a_time(server: RunningServer, alice: Session) -> None:
    old = uploaded(server.url, alice, b"\x0b" * 2000)
    time.sleep(0.01)
    cutoff = int(time.time() * 1000)
    time.sleep(0.01)
    new = uploaded(server.url, alice, b"\x0c" * 2000)
    done = ranvier_media(server, "delete", "--before-ts", str(cutoff), "--size-gt", "1000")
    assert done.returncode == 0, done.stderr
    assert f": {old[1]}" in done.stdout
    assert new[1] not in done.stdout
    assert status_of(server, alice, old) == 404
    assert status_of(server, alice, new) == 200
