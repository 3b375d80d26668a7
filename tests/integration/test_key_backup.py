"""Server-side key backups (/room_keys) over real HTTP on both engines, as a client that
backs up and restores megolm keys sees them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    admin_deactivate,
    authed,
    make_admin,
    reactivated,
    register,
)

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!backed:test.localhost"
OTHER_ROOM = "!other:test.localhost"
VERSION = CLIENT + "/room_keys/version"
KEYS = CLIENT + "/room_keys/keys"

_counter = iter(range(1_000_000))


server = module_server(
    allow_guest_access=True,
    **REGISTRATION_CONFIG,
)


def new_user(server: RunningServer) -> Session:
    return register(server.url, f"keeper{next(_counter)}")


def auth_data(public_key: str = "abcdefg") -> dict[str, Any]:
    return {
        "public_key": public_key,
        "signatures": {"@someone:test.localhost": {"ed25519:DEVICE": "c2lnbmF0dXJl"}},
    }


def key(
    first_message_index: int = 0,
    forwarded_count: int = 0,
    is_verified: bool = False,
    marker: str = "ciphertext",
) -> dict[str, Any]:
    return {
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": {"ephemeral": "ZXBo", "ciphertext": marker, "mac": "bWFj"},
    }


def call(server: RunningServer, who: Session, method: str, path: str, body: Any = None) -> Reply:
    return authed(who, method, server.url + path, body)


def q(value: str) -> str:
    return quote(value, safe="")


def keys_path(
    version: str | None, room_id: str | None = None, session_id: str | None = None
) -> str:
    path = KEYS
    if room_id is not None:
        path += "/" + q(room_id)
    if session_id is not None:
        path += "/" + q(session_id)
    return path if version is None else f"{path}?version={q(version)}"


def create(server: RunningServer, who: Session, data: dict[str, Any] | None = None) -> str:
    reply = call(
        server, who, "POST", VERSION, {"algorithm": ALGORITHM, "auth_data": data or auth_data()}
    )
    assert reply.status == 200, reply.body
    version = reply.json()["version"]
    assert isinstance(version, str)
    return version


def put_session(
    server: RunningServer, who: Session, version: str, session_id: str, data: dict[str, Any]
) -> Reply:
    return call(server, who, "PUT", keys_path(version, ROOM, session_id), data)


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def assert_counts(reply: Reply, count: int) -> str:
    """The {etag, count} answer of a change; returns the etag."""
    assert reply.status == 200, reply.body
    body = reply.json()
    assert set(body) == {"etag", "count"}
    assert isinstance(body["etag"], str)
    assert type(body["count"]) is int
    assert body["count"] == count
    etag: str = body["etag"]
    return etag


# --- versions -----------------------------------------------------------------------------


def test_no_backup_yet(server: RunningServer) -> None:
    alice = new_user(server)
    assert_error(call(server, alice, "GET", VERSION), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "GET", VERSION + "/1"), 404, "M_NOT_FOUND")
    assert_error(put_session(server, alice, "1", "s", key()), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "GET", keys_path("1")), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "DELETE", keys_path("1")), 404, "M_NOT_FOUND")


def test_create_and_read_a_version(server: RunningServer) -> None:
    alice = new_user(server)
    # auth_data comes back exactly as sent, whatever it holds
    sent = {
        "public_key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",
        "signatures": {alice.user_id: {"ed25519:ABCDEF": "sig"}},
        "extra": {"nested": [1, 2.5, None, True, "ü"]},
    }
    version = create(server, alice, sent)
    assert version == "1"
    current = call(server, alice, "GET", VERSION)
    assert current.status == 200
    body = current.json()
    assert body == {
        "algorithm": ALGORITHM,
        "auth_data": sent,
        "count": 0,
        "etag": body["etag"],
        "version": "1",
    }
    assert isinstance(body["etag"], str)
    assert type(body["count"]) is int
    by_number = call(server, alice, "GET", VERSION + "/1")
    assert (by_number.status, by_number.json()) == (200, body)


@pytest.mark.parametrize("opaque", ["anopaquestring", ["a", 1], 7, None, {}])
def test_auth_data_and_session_data_of_any_json_type_are_kept(
    server: RunningServer, opaque: Any
) -> None:
    # Synapse keeps these opaque values whatever their JSON type, and clients (SyTest's
    # backup tests among them) send strings
    alice = new_user(server)
    reply = call(server, alice, "POST", VERSION, {"algorithm": ALGORITHM, "auth_data": opaque})
    assert reply.status == 200, reply.body
    version = reply.json()["version"]
    assert call(server, alice, "GET", VERSION).json()["auth_data"] == opaque
    updated = call(
        server,
        alice,
        "PUT",
        VERSION + "/" + version,
        {"algorithm": ALGORITHM, "auth_data": "adifferentopaquestring", "version": version},
    )
    assert updated.status == 200, updated.body
    assert call(server, alice, "GET", VERSION).json()["auth_data"] == "adifferentopaquestring"
    session = {**key(first_message_index=3), "session_data": opaque}
    assert_counts(put_session(server, alice, version, "1234", session), 1)
    stored = call(server, alice, "GET", keys_path(version, ROOM, "1234"))
    assert (stored.status, stored.json()) == (200, session)


def test_versions_increase_and_compare_as_numbers(server: RunningServer) -> None:
    alice = new_user(server)
    versions = [create(server, alice) for _ in range(11)]
    assert versions == [str(n) for n in range(1, 12)]
    # "11" is the latest, though "9" sorts after it as a string
    assert call(server, alice, "GET", VERSION).json()["version"] == "11"
    assert call(server, alice, "GET", VERSION + "/9").json()["version"] == "9"
    # keys go to the latest only
    assert_counts(put_session(server, alice, "11", "s", key()), 1)
    refused = put_session(server, alice, "9", "s", key())
    assert_error(refused, 403, "M_WRONG_ROOM_KEYS_VERSION")
    assert refused.json()["current_version"] == "11"


def test_concurrent_creates_and_uploads(server: RunningServer) -> None:
    alice = new_user(server)
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda _: create(server, alice), range(8)))
    assert sorted(versions, key=int) == [str(n) for n in range(1, 9)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(
            pool.map(lambda n: put_session(server, alice, "8", f"s{n}", key()), range(16))
        )
    assert all(reply.status == 200 for reply in replies), [r.body for r in replies]
    info = call(server, alice, "GET", VERSION).json()
    assert info["count"] == 16
    # every upload changed the backup, so each answered an etag of its own
    etags = {reply.json()["etag"] for reply in replies}
    assert len(etags) == 16
    assert info["etag"] in etags


def test_every_user_numbers_their_own_versions(server: RunningServer) -> None:
    alice, bob = new_user(server), new_user(server)
    assert create(server, alice) == "1"
    assert create(server, alice) == "2"
    assert create(server, bob) == "1"


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({"auth_data": {}}, 400, "M_MISSING_PARAM"),
        ({"algorithm": 5, "auth_data": {}}, 400, "M_BAD_JSON"),
        ({"algorithm": ALGORITHM}, 400, "M_MISSING_PARAM"),
        (b"not json", 400, "M_NOT_JSON"),
        (b"[]", 400, "M_BAD_JSON"),
    ],
)
def test_create_refusals(server: RunningServer, body: Any, status: int, errcode: str) -> None:
    alice = new_user(server)
    assert_error(call(server, alice, "POST", VERSION, body), status, errcode)
    # nothing was created
    assert_error(call(server, alice, "GET", VERSION), 404, "M_NOT_FOUND")


def test_every_endpoint_needs_an_access_token(server: RunningServer) -> None:
    for method, path in [
        ("POST", VERSION),
        ("GET", VERSION),
        ("GET", VERSION + "/1"),
        ("PUT", VERSION + "/1"),
        ("DELETE", VERSION + "/1"),
        ("PUT", keys_path("1")),
        ("GET", keys_path("1", ROOM)),
        ("DELETE", keys_path("1", ROOM, "s")),
    ]:
        reply = request(method, server.url + path, {})
        assert_error(reply, 401, "M_MISSING_TOKEN")


def test_update_auth_data(server: RunningServer) -> None:
    alice = new_user(server)
    create(server, alice)
    create(server, alice)
    new_data = auth_data("newkey")
    done = call(
        server, alice, "PUT", VERSION + "/2", {"algorithm": ALGORITHM, "auth_data": new_data}
    )
    assert (done.status, done.json()) == (200, {})
    assert call(server, alice, "GET", VERSION + "/2").json()["auth_data"] == new_data
    # the version may be repeated in the body; an older version may be updated too
    done = call(
        server,
        alice,
        "PUT",
        VERSION + "/1",
        {"algorithm": ALGORITHM, "auth_data": new_data, "version": "1"},
    )
    assert done.status == 200, done.body
    assert call(server, alice, "GET", VERSION + "/1").json()["auth_data"] == new_data
    # the current version is still 2
    assert call(server, alice, "GET", VERSION).json()["version"] == "2"


@pytest.mark.parametrize(
    ("path_version", "body", "status", "errcode"),
    [
        ("1", {"algorithm": ALGORITHM, "auth_data": {}, "version": "2"}, 400, "M_INVALID_PARAM"),
        ("1", {"algorithm": "m.other", "auth_data": {}}, 400, "M_INVALID_PARAM"),
        ("1", {"auth_data": {}}, 400, "M_MISSING_PARAM"),
        ("1", {"algorithm": ALGORITHM}, 400, "M_MISSING_PARAM"),
        ("1", {"algorithm": ALGORITHM, "auth_data": {}, "version": 1}, 400, "M_BAD_JSON"),
        ("7", {"algorithm": ALGORITHM, "auth_data": {}}, 404, "M_NOT_FOUND"),
        ("abc", {"algorithm": ALGORITHM, "auth_data": {}}, 404, "M_NOT_FOUND"),
        ("01", {"algorithm": ALGORITHM, "auth_data": {}}, 404, "M_NOT_FOUND"),
    ],
)
def test_update_refusals(
    server: RunningServer, path_version: str, body: Any, status: int, errcode: str
) -> None:
    alice = new_user(server)
    create(server, alice)
    assert_error(call(server, alice, "PUT", VERSION + "/" + path_version, body), status, errcode)
    assert call(server, alice, "GET", VERSION + "/1").json()["auth_data"] == auth_data()


def test_unknown_versions_are_not_found(server: RunningServer) -> None:
    alice = new_user(server)
    create(server, alice)
    for version in ["2", "0", "abc", "01", "+1", "-1", "99999999999999999999999"]:
        assert_error(call(server, alice, "GET", VERSION + "/" + q(version)), 404, "M_NOT_FOUND")
        assert_error(call(server, alice, "GET", keys_path(version)), 404, "M_NOT_FOUND")
        assert_error(call(server, alice, "DELETE", keys_path(version)), 404, "M_NOT_FOUND")
        assert_error(put_session(server, alice, version, "s", key()), 404, "M_NOT_FOUND")
        assert_error(call(server, alice, "DELETE", VERSION + "/" + q(version)), 404, "M_NOT_FOUND")


def test_delete_a_version_and_its_keys(server: RunningServer) -> None:
    alice = new_user(server)
    assert create(server, alice) == "1"
    assert create(server, alice) == "2"
    assert_counts(put_session(server, alice, "2", "s1", key()), 1)
    done = call(server, alice, "DELETE", VERSION + "/2")
    assert (done.status, done.json()) == (200, {})
    assert_error(call(server, alice, "GET", VERSION + "/2"), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "GET", keys_path("2")), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "GET", keys_path("2", ROOM, "s1")), 404, "M_NOT_FOUND")
    assert_error(put_session(server, alice, "2", "s1", key()), 404, "M_NOT_FOUND")
    assert_error(
        call(server, alice, "PUT", VERSION + "/2", {"algorithm": ALGORITHM, "auth_data": {}}),
        404,
        "M_NOT_FOUND",
    )
    # spec: deleting a version deleted before succeeds
    again = call(server, alice, "DELETE", VERSION + "/2")
    assert (again.status, again.json()) == (200, {})
    # the latest remaining version is current again
    assert call(server, alice, "GET", VERSION).json()["version"] == "1"
    assert_counts(put_session(server, alice, "1", "s1", key()), 1)
    # a deleted version's number is never handed out again, nor are its keys back
    assert create(server, alice) == "3"
    assert call(server, alice, "GET", keys_path("3")).json() == {"rooms": {}}
    # deleting the only versions leaves no backup
    call(server, alice, "DELETE", VERSION + "/1")
    call(server, alice, "DELETE", VERSION + "/3")
    assert_error(call(server, alice, "GET", VERSION), 404, "M_NOT_FOUND")


# --- keys ---------------------------------------------------------------------------------


def test_store_and_restore_keys_at_every_level(server: RunningServer) -> None:
    alice = new_user(server)
    version = create(server, alice)
    assert_counts(put_session(server, alice, version, "s1", key(marker="one")), 1)
    room_body = {"sessions": {"s2": key(marker="two"), "s3": key(marker="three")}}
    assert_counts(call(server, alice, "PUT", keys_path(version, ROOM), room_body), 3)
    all_body = {"rooms": {OTHER_ROOM: {"sessions": {"s4": key(marker="four")}}}}
    assert_counts(call(server, alice, "PUT", keys_path(version), all_body), 4)

    one = call(server, alice, "GET", keys_path(version, ROOM, "s1"))
    assert (one.status, one.json()) == (200, key(marker="one"))
    room = call(server, alice, "GET", keys_path(version, ROOM))
    assert (room.status, room.json()) == (
        200,
        {"sessions": {"s1": key(marker="one"), **room_body["sessions"]}},
    )
    everything = call(server, alice, "GET", keys_path(version))
    assert (everything.status, everything.json()) == (
        200,
        {
            "rooms": {
                ROOM: {"sessions": {"s1": key(marker="one"), **room_body["sessions"]}},
                OTHER_ROOM: {"sessions": {"s4": key(marker="four")}},
            }
        },
    )
    info = call(server, alice, "GET", VERSION).json()
    assert info["count"] == 4


def test_missing_keys(server: RunningServer) -> None:
    alice = new_user(server)
    version = create(server, alice)
    assert call(server, alice, "GET", keys_path(version)).json() == {"rooms": {}}
    reply = call(server, alice, "GET", keys_path(version, ROOM))
    assert (reply.status, reply.json()) == (200, {"sessions": {}})
    assert_error(call(server, alice, "GET", keys_path(version, ROOM, "nope")), 404, "M_NOT_FOUND")
    # a session of another room is not found either
    assert_counts(put_session(server, alice, version, "s1", key()), 1)
    assert_error(
        call(server, alice, "GET", keys_path(version, OTHER_ROOM, "s1")), 404, "M_NOT_FOUND"
    )


def test_room_and_session_ids_with_awkward_characters(server: RunningServer) -> None:
    alice = new_user(server)
    version = create(server, alice)
    session_id = "ab+c/d=e f"
    reply = call(server, alice, "PUT", keys_path(version, ROOM, session_id), key())
    assert_counts(reply, 1)
    got = call(server, alice, "GET", keys_path(version, ROOM, session_id))
    assert (got.status, got.json()) == (200, key())
    assert call(server, alice, "GET", keys_path(version)).json() == {
        "rooms": {ROOM: {"sessions": {session_id: key()}}}
    }


# (existing, uploaded, which one the backup keeps) - spec: "Server-side key backups"
BETTER_KEY_CASES = [
    pytest.param(key(5, 0, False), key(9, 3, True), "uploaded", id="verified-beats-lower-index"),
    pytest.param(key(9, 3, True), key(0, 0, False), "existing", id="unverified-never-replaces"),
    pytest.param(key(5, 0, False), key(3, 9, False), "uploaded", id="lower-index-wins"),
    pytest.param(key(3, 0, True), key(5, 0, True), "existing", id="higher-index-loses"),
    pytest.param(key(3, 2, True), key(3, 1, True), "uploaded", id="fewer-forwards-win"),
    pytest.param(key(3, 1, False), key(3, 2, False), "existing", id="more-forwards-lose"),
    pytest.param(key(3, 1, True), key(3, 1, True), "existing", id="a-tie-keeps-the-existing"),
]


@pytest.mark.parametrize(("existing", "uploaded", "kept"), BETTER_KEY_CASES)
@pytest.mark.parametrize("level", ["session", "room", "all"])
def test_the_better_key_is_kept(
    server: RunningServer,
    existing: dict[str, Any],
    uploaded: dict[str, Any],
    kept: str,
    level: str,
) -> None:
    alice = new_user(server)
    version = create(server, alice)
    existing = {**existing, "session_data": {"ciphertext": "existing"}}
    uploaded = {**uploaded, "session_data": {"ciphertext": "uploaded"}}
    etag = assert_counts(put_session(server, alice, version, "s", existing), 1)
    if level == "session":
        reply = put_session(server, alice, version, "s", uploaded)
    elif level == "room":
        reply = call(server, alice, "PUT", keys_path(version, ROOM), {"sessions": {"s": uploaded}})
    else:
        body = {"rooms": {ROOM: {"sessions": {"s": uploaded}}}}
        reply = call(server, alice, "PUT", keys_path(version), body)
    new_etag = assert_counts(reply, 1)
    stored = call(server, alice, "GET", keys_path(version, ROOM, "s")).json()
    assert stored == (uploaded if kept == "uploaded" else existing)
    # the etag moves exactly when the backup changed
    assert (new_etag != etag) == (kept == "uploaded")
    assert call(server, alice, "GET", VERSION).json()["etag"] == new_etag


def test_etag_and_count_follow_every_change(server: RunningServer) -> None:
    alice = new_user(server)
    version = create(server, alice)
    etags = [call(server, alice, "GET", VERSION).json()["etag"]]

    def changed(reply: Reply, count: int) -> None:
        etag = assert_counts(reply, count)
        assert etag not in etags
        etags.append(etag)
        info = call(server, alice, "GET", VERSION).json()
        assert (info["etag"], info["count"]) == (etag, count)

    def unchanged(reply: Reply, count: int) -> None:
        assert assert_counts(reply, count) == etags[-1]

    two = {"sessions": {"a": key(5), "b": key(5)}}
    changed(call(server, alice, "PUT", keys_path(version, ROOM), two), 2)
    # the same keys again change nothing
    unchanged(call(server, alice, "PUT", keys_path(version, ROOM), two), 2)
    # an empty upload changes nothing
    unchanged(call(server, alice, "PUT", keys_path(version), {"rooms": {}}), 2)
    changed(put_session(server, alice, version, "a", key(1)), 2)
    changed(call(server, alice, "PUT", keys_path(version, OTHER_ROOM, "c"), key()), 3)
    changed(call(server, alice, "DELETE", keys_path(version, ROOM, "a")), 2)
    # deleting what is not there changes nothing
    unchanged(call(server, alice, "DELETE", keys_path(version, ROOM, "a")), 2)
    unchanged(call(server, alice, "DELETE", keys_path(version, "!empty:test.localhost")), 2)
    changed(call(server, alice, "DELETE", keys_path(version, ROOM)), 1)
    assert call(server, alice, "GET", keys_path(version)).json() == {
        "rooms": {OTHER_ROOM: {"sessions": {"c": key()}}}
    }
    changed(call(server, alice, "DELETE", keys_path(version)), 0)
    assert call(server, alice, "GET", keys_path(version)).json() == {"rooms": {}}


def test_a_large_upload(server: RunningServer) -> None:
    alice = new_user(server)
    version = create(server, alice)
    rooms = {
        room_id: {"sessions": {f"s{n}": key(n) for n in range(700)}}
        for room_id in (ROOM, OTHER_ROOM)
    }
    etag = assert_counts(call(server, alice, "PUT", keys_path(version), {"rooms": rooms}), 1400)
    # the same keys again: every one is found and kept
    again = call(server, alice, "PUT", keys_path(version), {"rooms": rooms})
    assert assert_counts(again, 1400) == etag
    # one better key among them is taken
    rooms[ROOM]["sessions"]["s650"] = key(0, marker="better")
    better = call(server, alice, "PUT", keys_path(version), {"rooms": rooms})
    assert assert_counts(better, 1400) != etag
    assert call(server, alice, "GET", keys_path(version)).json() == {"rooms": rooms}


def test_keys_of_an_older_version_can_be_read_and_deleted_but_not_written(
    server: RunningServer,
) -> None:
    alice = new_user(server)
    create(server, alice)
    assert_counts(put_session(server, alice, "1", "s", key()), 1)
    create(server, alice)
    for reply in [
        put_session(server, alice, "1", "s", key()),
        call(server, alice, "PUT", keys_path("1", ROOM), {"sessions": {"s": key()}}),
        call(server, alice, "PUT", keys_path("1"), {"rooms": {ROOM: {"sessions": {}}}}),
    ]:
        assert_error(reply, 403, "M_WRONG_ROOM_KEYS_VERSION")
        assert reply.json()["current_version"] == "2"
    assert call(server, alice, "GET", keys_path("1", ROOM, "s")).json() == key()
    assert_counts(call(server, alice, "DELETE", keys_path("1", ROOM, "s")), 0)
    # the new version did not get the old version's keys
    assert call(server, alice, "GET", VERSION + "/2").json()["count"] == 0


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [KEYS, KEYS + "/" + q(ROOM), KEYS + "/" + q(ROOM) + "/s"],
    ids=["all", "room", "session"],
)
def test_the_version_parameter_is_required(server: RunningServer, method: str, path: str) -> None:
    alice = new_user(server)
    create(server, alice)
    body = {"rooms": {}} if path == KEYS else {"sessions": {}} if path.endswith(q(ROOM)) else key()
    assert_error(
        call(server, alice, method, path, body if method == "PUT" else None),
        400,
        "M_MISSING_PARAM",
    )


def _without(field: str) -> dict[str, Any]:
    data = key()
    del data[field]
    return data


@pytest.mark.parametrize(
    ("level", "body", "errcode"),
    [
        ("session", _without("first_message_index"), "M_MISSING_PARAM"),
        ("session", _without("forwarded_count"), "M_MISSING_PARAM"),
        ("session", _without("is_verified"), "M_MISSING_PARAM"),
        ("session", _without("session_data"), "M_MISSING_PARAM"),
        ("session", {**key(), "first_message_index": "1"}, "M_BAD_JSON"),
        ("session", {**key(), "first_message_index": -1}, "M_BAD_JSON"),
        ("session", {**key(), "first_message_index": 1.5}, "M_BAD_JSON"),
        ("session", {**key(), "forwarded_count": True}, "M_BAD_JSON"),
        ("session", {**key(), "forwarded_count": 2**53}, "M_BAD_JSON"),
        ("session", {**key(), "is_verified": "yes"}, "M_BAD_JSON"),
        ("room", {}, "M_MISSING_PARAM"),
        ("room", {"sessions": []}, "M_BAD_JSON"),
        ("room", {"sessions": {"ok": key(), "bad": {**key(), "is_verified": 1}}}, "M_BAD_JSON"),
        ("all", {}, "M_MISSING_PARAM"),
        ("all", {"rooms": []}, "M_BAD_JSON"),
        ("all", {"rooms": {ROOM: []}}, "M_BAD_JSON"),
        ("all", {"rooms": {ROOM: {}}}, "M_MISSING_PARAM"),
        ("all", {"rooms": {ROOM: {"sessions": {"s": key()}}, OTHER_ROOM: 1}}, "M_BAD_JSON"),
        ("all", b"{", "M_NOT_JSON"),
    ],
)
def test_bad_key_uploads_are_refused_whole(
    server: RunningServer, level: str, body: Any, errcode: str
) -> None:
    alice = new_user(server)
    version = create(server, alice)
    path = {
        "session": keys_path(version, ROOM, "s"),
        "room": keys_path(version, ROOM),
        "all": keys_path(version),
    }[level]
    assert_error(call(server, alice, "PUT", path, body), 400, errcode)
    # nothing of it was stored
    assert call(server, alice, "GET", VERSION).json()["count"] == 0


def test_another_user_cannot_see_or_touch_a_backup(server: RunningServer) -> None:
    alice, mallory = new_user(server), new_user(server)
    create(server, alice)
    create(server, alice)
    assert_counts(put_session(server, alice, "2", "s", key()), 1)
    before = call(server, alice, "GET", VERSION).json()

    assert_error(call(server, mallory, "GET", VERSION), 404, "M_NOT_FOUND")
    for version in ["1", "2"]:
        assert_error(call(server, mallory, "GET", VERSION + "/" + version), 404, "M_NOT_FOUND")
        assert_error(
            call(
                server,
                mallory,
                "PUT",
                VERSION + "/" + version,
                {"algorithm": ALGORITHM, "auth_data": {"public_key": "mallory"}},
            ),
            404,
            "M_NOT_FOUND",
        )
        for path in [keys_path(version), keys_path(version, ROOM), keys_path(version, ROOM, "s")]:
            assert_error(call(server, mallory, "GET", path), 404, "M_NOT_FOUND")
            assert_error(call(server, mallory, "DELETE", path), 404, "M_NOT_FOUND")
        assert_error(
            put_session(server, mallory, version, "s", key(0, 0, True)), 404, "M_NOT_FOUND"
        )
        assert_error(call(server, mallory, "DELETE", VERSION + "/" + version), 404, "M_NOT_FOUND")
    # mallory's own backup lives beside alice's without touching it
    assert create(server, mallory) == "1"
    assert_counts(put_session(server, mallory, "1", "s", key(0, 0, True, "mallory")), 1)
    assert call(server, alice, "GET", VERSION).json() == before
    assert call(server, alice, "GET", keys_path("2", ROOM, "s")).json() == key()


def test_guests_cannot_back_up_keys(server: RunningServer) -> None:
    reply = request("POST", server.url + CLIENT + "/register?kind=guest", {})
    assert reply.status == 200, reply.body
    guest = Session(reply.json()["user_id"], reply.json()["access_token"], "")
    for method, path in [("POST", VERSION), ("GET", VERSION), ("PUT", keys_path("1"))]:
        body = {"algorithm": ALGORITHM, "auth_data": {}} if method == "POST" else None
        assert_error(call(server, guest, method, path, body), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_deactivation_deletes_the_backups(server: RunningServer) -> None:
    admin = make_admin(server.config_path, f"admin{next(_counter)}")
    localpart = f"leaver{next(_counter)}"
    alice = register(server.url, localpart)
    create(server, alice)
    assert_counts(put_session(server, alice, "1", "s", key()), 1)
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": DEFAULT_PASSWORD,
    }
    done = call(server, alice, "POST", CLIENT + "/account/deactivate", {"auth": auth})
    assert done.status == 200, done.body
    # an admin brings the account back: its backups are gone, numbering starts over
    alice = reactivated(server.url, admin, alice.user_id)
    assert_error(call(server, alice, "GET", VERSION), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "GET", keys_path("1")), 404, "M_NOT_FOUND")
    assert create(server, alice) == "1"
    assert call(server, alice, "GET", keys_path("1")).json() == {"rooms": {}}


def test_admin_deactivation_deletes_the_backups(server: RunningServer) -> None:
    admin = make_admin(server.config_path, f"admin{next(_counter)}")
    localpart = f"removed{next(_counter)}"
    alice = register(server.url, localpart)
    create(server, alice)
    assert_counts(put_session(server, alice, "1", "s", key()), 1)
    admin_deactivate(server.url, admin, alice.user_id)
    alice = reactivated(server.url, admin, alice.user_id)
    assert_error(call(server, alice, "GET", VERSION), 404, "M_NOT_FOUND")
