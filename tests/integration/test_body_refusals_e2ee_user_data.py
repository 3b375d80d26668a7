"""Request bodies of the encryption, device and per-user data endpoints are read at the edge
into typed models: a wrong type or shape is answered with the spec's errcode (M_BAD_JSON, or
M_MISSING_PARAM for an absent key, M_INVALID_PARAM where the spec says so), never a 500,
and nothing of the refused request is kept. Keys a client adds are ignored."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, register

CLIENT = "/_matrix/client/v3"

server = module_server(**REGISTRATION_CONFIG)

_counter = iter(range(1_000_000))


def new_user(server: RunningServer) -> Session:
    return register(server.url, f"edge{next(_counter)}")


def call(
    server: RunningServer, session: Session, method: str, path: str, body: Any = None
) -> Reply:
    return authed(session, method, server.url + CLIENT + path, body)


def ok(reply: Reply) -> Any:
    assert reply.status == 200, reply.body
    return reply.json()


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def q(value: str) -> str:
    return quote(value, safe="")


# -- /keys ---------------------------------------------------------------------------------


def device_keys(session: Session, **changes: Any) -> dict[str, Any]:
    # the shape is all that is checked here; signatures are only checked when used
    keys = {
        "user_id": session.user_id,
        "device_id": session.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {f"curve25519:{session.device_id}": "curve", f"ed25519:{session.device_id}": "ed"},
        "signatures": {session.user_id: {f"ed25519:{session.device_id}": "sig"}},
    }
    return {**keys, **changes}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"one_time_keys": {"signed_curve25519:AAA": 5}}, "M_BAD_JSON"),
        ({"one_time_keys": {"signed_curve25519:AAA": None}}, "M_BAD_JSON"),
        ({"one_time_keys": ["signed_curve25519:AAA"]}, "M_BAD_JSON"),
        ({"one_time_keys": {"no-colon": {"key": "k"}}}, "M_BAD_JSON"),
        ({"fallback_keys": "k"}, "M_BAD_JSON"),
        (
            {"fallback_keys": {"signed_curve25519:A": {"key": "a"}, "signed_curve25519:B": "b"}},
            "M_BAD_JSON",
        ),
        ({"device_keys": ["keys"]}, "M_BAD_JSON"),
        ("algorithms", "M_BAD_JSON"),
        ("keys", "M_BAD_JSON"),
        ("signatures", "M_BAD_JSON"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_malformed_key_uploads_are_refused_whole(
    server: RunningServer, body: Any, errcode: str
) -> None:
    alice = new_user(server)
    if isinstance(body, str):
        # a device_keys field of the wrong type, with a good one-time key beside it
        body = {
            "device_keys": device_keys(alice, **{body: "wrong"}),
            "one_time_keys": {"signed_curve25519:AAA": {"key": "k"}},
        }
    assert_error(call(server, alice, "POST", "/keys/upload", body), 400, errcode)
    # nothing was kept: no one-time key counted, no device keys published
    assert ok(call(server, alice, "POST", "/keys/upload", {}))["one_time_key_counts"] == {}
    queried = ok(call(server, alice, "POST", "/keys/query", {"device_keys": {alice.user_id: []}}))
    assert queried["device_keys"][alice.user_id] == {}


def test_a_well_formed_key_upload_with_extra_keys_is_accepted(server: RunningServer) -> None:
    alice = new_user(server)
    body = {
        "device_keys": {**device_keys(alice), "org.example.extra": True},
        "one_time_keys": {"signed_curve25519:AAA": {"key": "k"}, "curve25519:BBB": "bare"},
        "org.example.unknown": [1, 2],
    }
    counts = ok(call(server, alice, "POST", "/keys/upload", body))["one_time_key_counts"]
    assert counts == {"signed_curve25519": 1, "curve25519": 1}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"device_keys": {"@edge:test.localhost": "DEVICE"}}, "M_BAD_JSON"),
        ({"device_keys": {"@edge:test.localhost": {"DEVICE": True}}}, "M_BAD_JSON"),
        ({"device_keys": {"@edge:test.localhost": None}}, "M_BAD_JSON"),
        ({"device_keys": None}, "M_BAD_JSON"),
        ({"timeout": 10}, "M_MISSING_PARAM"),
    ],
)
def test_key_query_refusals(server: RunningServer, body: Any, errcode: str) -> None:
    alice = new_user(server)
    assert_error(call(server, alice, "POST", "/keys/query", body), 400, errcode)


def test_key_query_ignores_keys_it_does_not_know(server: RunningServer) -> None:
    alice = new_user(server)
    body = {"device_keys": {alice.user_id: []}, "timeout": 10_000, "org.example": {}}
    assert alice.user_id in ok(call(server, alice, "POST", "/keys/query", body))["device_keys"]


@pytest.mark.parametrize(
    "one_time_keys",
    [
        "signed_curve25519",
        {"@edge:test.localhost": "signed_curve25519"},
        {"@edge:test.localhost": {"DEVICE": 5}},
        {"@edge:test.localhost": {"DEVICE": ["signed_curve25519"]}},
    ],
)
def test_key_claim_refusals(server: RunningServer, one_time_keys: Any) -> None:
    alice = new_user(server)
    reply = call(server, alice, "POST", "/keys/claim", {"one_time_keys": one_time_keys})
    assert_error(reply, 400, "M_BAD_JSON")


def test_a_refused_claim_takes_no_key(server: RunningServer) -> None:
    alice = new_user(server)
    upload = {"one_time_keys": {"signed_curve25519:AAA": {"key": "k"}}}
    ok(call(server, alice, "POST", "/keys/upload", upload))
    wanted = {alice.user_id: {alice.device_id: "signed_curve25519"}}
    # one good entry and one of the wrong type: the whole request is refused
    bad = {"one_time_keys": {**wanted, "@other:test.localhost": {"D": 1}}}
    assert_error(call(server, alice, "POST", "/keys/claim", bad), 400, "M_BAD_JSON")
    claimed = ok(call(server, alice, "POST", "/keys/claim", {"one_time_keys": wanted}))
    assert list(claimed["one_time_keys"][alice.user_id][alice.device_id]) == [
        "signed_curve25519:AAA"
    ]


@pytest.mark.parametrize("field", ["master_key", "self_signing_key", "user_signing_key"])
def test_cross_signing_keys_of_the_wrong_type_are_refused(
    server: RunningServer, field: str
) -> None:
    alice = new_user(server)
    reply = call(server, alice, "POST", "/keys/device_signing/upload", {field: "key"})
    assert_error(reply, 400, "M_BAD_JSON")
    queried = ok(call(server, alice, "POST", "/keys/query", {"device_keys": {alice.user_id: []}}))
    assert queried["master_keys"] == {}


# -- key backup ----------------------------------------------------------------------------


def session_key(**changes: Any) -> dict[str, Any]:
    key = {
        "first_message_index": 0,
        "forwarded_count": 0,
        "is_verified": False,
        "session_data": {"ciphertext": "c", "ephemeral": "e", "mac": "m"},
    }
    return {**key, **changes}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (session_key(first_message_index=None), "M_BAD_JSON"),
        (session_key(forwarded_count=-1), "M_BAD_JSON"),
        (session_key(is_verified=0), "M_BAD_JSON"),
        ({k: v for k, v in session_key().items() if k != "session_data"}, "M_MISSING_PARAM"),
    ],
)
def test_room_key_session_refusals(server: RunningServer, body: Any, errcode: str) -> None:
    alice = new_user(server)
    version = ok(
        call(server, alice, "POST", "/room_keys/version", {"algorithm": "m.a", "auth_data": {}})
    )["version"]
    path = f"/room_keys/keys/{q('!room:test.localhost')}/session?version={version}"
    assert_error(call(server, alice, "PUT", path, body), 400, errcode)
    assert ok(call(server, alice, "GET", f"/room_keys/version/{version}"))["count"] == 0
    # the same session, well formed, with a key the spec does not name
    assert ok(call(server, alice, "PUT", path, {**session_key(), "org.example": 1}))["count"] == 1


# -- to-device, account data, presence, profile, filters, devices ---------------------------


@pytest.mark.parametrize(
    "messages",
    [
        ["hello"],
        {"@edge:test.localhost": ["hello"]},
        {"@edge:test.localhost": {"*": "hello"}},
        {"@edge:test.localhost": {"DEVICE": None}},
    ],
)
def test_send_to_device_needs_objects(server: RunningServer, messages: Any) -> None:
    alice = new_user(server)
    reply = call(server, alice, "PUT", "/sendToDevice/m.test/txn1", {"messages": messages})
    assert_error(reply, 400, "M_BAD_JSON")


@pytest.mark.parametrize("body", [b"[1]", b'"text"', b"null", b"3"])
def test_account_data_must_be_an_object(server: RunningServer, body: bytes) -> None:
    alice = new_user(server)
    path = f"/user/{q(alice.user_id)}/account_data/org.example.data"
    assert_error(call(server, alice, "PUT", path, body), 400, "M_BAD_JSON")
    assert_error(call(server, alice, "GET", path), 404, "M_NOT_FOUND")
    room_path = f"/user/{q(alice.user_id)}/rooms/{q('!r:test.localhost')}/account_data/org.x"
    assert_error(call(server, alice, "PUT", room_path, body), 400, "M_BAD_JSON")
    assert_error(call(server, alice, "GET", room_path), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("order", [None, "0.5", [0.5]])
def test_tag_order_must_be_a_number(server: RunningServer, order: Any) -> None:
    alice = new_user(server)
    tags = f"/user/{q(alice.user_id)}/rooms/{q('!r:test.localhost')}/tags"
    assert_error(call(server, alice, "PUT", tags + "/u.x", {"order": order}), 400, "M_BAD_JSON")
    assert ok(call(server, alice, "GET", tags)) == {"tags": {}}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"presence": 5}, "M_BAD_JSON"),
        ({"presence": None}, "M_BAD_JSON"),
        ({"presence": "busy"}, "M_INVALID_PARAM"),
        ({"presence": "online", "status_msg": ["away"]}, "M_BAD_JSON"),
        ({"status_msg": "away"}, "M_MISSING_PARAM"),
    ],
)
def test_presence_refusals(server: RunningServer, body: Any, errcode: str) -> None:
    alice = new_user(server)
    path = f"/presence/{q(alice.user_id)}/status"
    before = ok(call(server, alice, "GET", path))
    assert_error(call(server, alice, "PUT", path, body), 400, errcode)
    assert ok(call(server, alice, "GET", path))["presence"] == before["presence"]


@pytest.mark.parametrize("displayname", [5, ["Alice"], {"name": "Alice"}, True])
def test_display_name_must_be_a_string(server: RunningServer, displayname: Any) -> None:
    alice = new_user(server)
    path = f"/profile/{q(alice.user_id)}/displayname"
    before = ok(call(server, alice, "GET", path))
    reply = call(server, alice, "PUT", path, {"displayname": displayname})
    assert_error(reply, 400, "M_BAD_JSON")
    assert ok(call(server, alice, "GET", path)) == before


@pytest.mark.parametrize(
    "body",
    [
        {"room": {"timeline": {"limit": "10"}}},
        {"room": {"rooms": "!r:test.localhost"}},
        {"event_fields": "content.body"},
        {"presence": ["m.presence"]},
    ],
)
def test_filter_fields_of_the_wrong_type_are_refused(server: RunningServer, body: Any) -> None:
    alice = new_user(server)
    path = f"/user/{q(alice.user_id)}/filter"
    before = int(ok(call(server, alice, "POST", path, {"event_format": "client"}))["filter_id"])
    assert_error(call(server, alice, "POST", path, body), 400, "M_BAD_JSON")
    # filter IDs come from one counter: had the refused filter been stored, it took the next
    after = ok(call(server, alice, "POST", path, {"event_format": "federation"}))["filter_id"]
    assert int(after) == before + 1


def test_device_bodies_of_the_wrong_type_are_refused(server: RunningServer) -> None:
    alice = new_user(server)
    device = f"/devices/{q(alice.device_id)}"
    assert_error(call(server, alice, "PUT", device, {"display_name": 5}), 400, "M_BAD_JSON")
    assert "display_name" not in ok(call(server, alice, "GET", device))
    for devices in ("DEVICE", [1], None):
        reply = call(server, alice, "POST", "/delete_devices", {"devices": devices})
        assert_error(reply, 400, "M_BAD_JSON")
    assert_error(call(server, alice, "POST", "/delete_devices", {}), 400, "M_MISSING_PARAM")
    assert ok(call(server, alice, "GET", device))["device_id"] == alice.device_id


# -- receipts and typing -------------------------------------------------------------------


@pytest.fixture(scope="module")
def room(server: RunningServer) -> tuple[Session, str, str]:
    """A user, a room they created and an event of theirs in it."""
    alice = new_user(server)
    room_id = ok(call(server, alice, "POST", "/createRoom", {}))["room_id"]
    sent = call(server, alice, "PUT", f"/rooms/{q(room_id)}/send/m.room.message/t1", {"body": "hi"})
    return alice, room_id, ok(sent)["event_id"]


@pytest.mark.parametrize("thread_id", [5, ["main"], {"id": "main"}, True, ""])
def test_receipt_thread_id_must_be_a_non_empty_string(
    server: RunningServer, room: tuple[Session, str, str], thread_id: Any
) -> None:
    alice, room_id, event_id = room
    path = f"/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}"
    # spec (receipts.yaml): a thread_id that is not a string, or empty, is M_INVALID_PARAM
    reply = call(server, alice, "POST", path, {"thread_id": thread_id})
    assert_error(reply, 400, "M_INVALID_PARAM")
    assert ok(call(server, alice, "POST", path, {"thread_id": "main"})) == {}


def test_read_markers_and_typing_refusals(
    server: RunningServer, room: tuple[Session, str, str]
) -> None:
    alice, room_id, event_id = room
    markers = f"/rooms/{q(room_id)}/read_markers"
    for field in ("m.fully_read", "m.read", "m.read.private"):
        assert_error(call(server, alice, "POST", markers, {field: 5}), 400, "M_BAD_JSON")
    typing = f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}"
    for body in ({"typing": 1}, {"typing": True, "timeout": -1}, {"typing": True, "timeout": 1.5}):
        assert_error(call(server, alice, "PUT", typing, body), 400, "M_BAD_JSON")
    assert_error(call(server, alice, "PUT", typing, {"timeout": 1000}), 400, "M_MISSING_PARAM")
    assert ok(call(server, alice, "PUT", typing, {"typing": True, "timeout": 1000})) == {}
    assert ok(call(server, alice, "POST", markers, {"m.read": event_id, "org.x": 1})) == {}
