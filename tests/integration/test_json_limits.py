"""JSON that cannot be stored and served back is refused at the edge, and JSON stored before
that limit held never breaks reading, on both engines.

Every value a client sends is held to one nesting depth (100) and to canonical JSON's number
range; beyond them the answer is 400, never 500, and nothing is written.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, make_admin

CLIENT = "/_matrix/client/v3"
MAX_DEPTH = 100

server = module_server(caches={"sync_response_cache_duration": 0}, **REGISTRATION_CONFIG)


def nested(depth: int, leaf: bytes = b'"leaf"') -> bytes:
    """A JSON object `depth` levels deep, as bytes: Python's own encoder would give up."""
    return b'{"a":' * depth + leaf + b"}" * depth


def nested_value(depth: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


def wrapped(key: bytes, inner: bytes) -> bytes:
    return b"{" + b'"' + key + b'":' + inner + b"}"


@pytest.fixture(scope="module")
def room_id(server: RunningServer, alice: Session) -> str:
    reply = authed(
        alice,
        "POST",
        server.url + CLIENT + "/createRoom",
        {"room_version": "11", "preset": "public_chat"},
    )
    assert reply.status == 200, reply.body
    created: str = reply.json()["room_id"]
    return created


def requests_carrying(
    server: RunningServer, alice: Session, room_id: str, payload: bytes
) -> list[tuple[str, str, bytes]]:
    """(method, url, body) of every kind of stored JSON a client can send, with `payload`
    where the free-form content goes."""
    user = quote(alice.user_id)
    room = f"{server.url}{CLIENT}/rooms/{quote(room_id)}"
    return [
        ("PUT", f"{room}/send/m.room.message/{id(payload)}", payload),
        ("PUT", f"{room}/state/com.example.deep/", payload),
        (
            "POST",
            server.url + CLIENT + "/createRoom",
            b'{"initial_state":[{"type":"com.example.deep","state_key":"","content":'
            + payload
            + b"}]}",
        ),
        ("POST", server.url + CLIENT + "/createRoom", wrapped(b"creation_content", payload)),
        ("PUT", f"{server.url}{CLIENT}/user/{user}/account_data/com.example.deep", payload),
        (
            "PUT",
            f"{server.url}{CLIENT}/user/{user}/rooms/{quote(room_id)}/account_data/com.example.d",
            payload,
        ),
        (
            "PUT",
            f"{server.url}{CLIENT}/sendToDevice/com.example.deep/{id(payload)}",
            b'{"messages":{"' + alice.user_id.encode() + b'":{"*":' + payload + b"}}}",
        ),
        ("POST", f"{server.url}{CLIENT}/user/{user}/filter", wrapped(b"event_fields", payload)),
        (
            "PUT",
            f"{server.url}{CLIENT}/pushrules/global/override/deep",
            b'{"actions":["notify"],"conditions":[' + payload + b"]}",
        ),
        (
            "PUT",
            f"{server.url}{CLIENT}/profile/{user}/com.example.deep",
            wrapped(b"com.example.deep", payload),
        ),
        ("POST", f"{server.url}{CLIENT}/keys/upload", wrapped(b"device_keys", payload)),
        ("PUT", f"{room}/typing/{user}", wrapped(b"typing", payload)),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        nested(MAX_DEPTH + 1),
        # just under what the serialiser could write: the depth that once poisoned /sync
        nested(250),
        nested(1000),
        # past the parser's own limit
        nested(5000),
    ],
    ids=["limit+1", "250", "1000", "5000"],
)
def test_deeper_json_is_refused_everywhere_and_nothing_is_written(
    server: RunningServer, alice: Session, room_id: str, payload: bytes
) -> None:
    for method, url, body in requests_carrying(server, alice, room_id, payload):
        reply = authed(alice, method, url, body)
        assert reply.status == 400, (url, reply.status, reply.body)
        assert reply.errcode in ("M_BAD_JSON", "M_NOT_JSON"), (url, reply.body)
    account_data = authed(
        alice,
        "GET",
        f"{server.url}{CLIENT}/user/{quote(alice.user_id)}/account_data/com.example.deep",
    )
    assert account_data.status == 404
    sync = authed(alice, "GET", server.url + CLIENT + "/sync")
    assert sync.status == 200, sync.body


@pytest.mark.parametrize(
    "number",
    [b"9007199254740992", b"-9007199254740992", b"18446744073709551616", b"1e300", b"-1e20"],
)
def test_numbers_outside_the_canonical_range_are_refused_not_turned_into_floats(
    server: RunningServer, alice: Session, room_id: str, number: bytes
) -> None:
    for method, url, body in requests_carrying(server, alice, room_id, wrapped(b"n", number)):
        reply = authed(alice, method, url, body)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), (url, reply.body)
        assert "outside" in reply.json()["error"]


def test_strings_with_nul_are_refused_everywhere(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    # PostgreSQL cannot store U+0000 in text; these were 500s there
    for payload in (b'{"body":"a\\u0000b"}', b'{"a\\u0000":1}'):
        for method, url, body in requests_carrying(server, alice, room_id, payload):
            reply = authed(alice, method, url, body)
            assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), (url, reply.body)
    for method, path, body in (
        ("POST", "/createRoom", {"name": "a\x00b"}),
        ("PUT", f"/profile/{quote(alice.user_id)}/displayname", {"displayname": "a\x00"}),
        ("PUT", f"/devices/{alice.device_id}", {"display_name": "a\x00"}),
        (
            "PUT",
            f"/presence/{quote(alice.user_id)}/status",
            {"presence": "online", "status_msg": "\x00"},
        ),
        ("POST", f"/rooms/{quote(room_id)}/report", {"reason": "a\x00"}),
        ("POST", f"/rooms/{quote(room_id)}/invite", {"user_id": "@a\x00:test.localhost"}),
        ("POST", "/room_keys/version", {"algorithm": "a\x00", "auth_data": {}}),
        (
            "POST",
            "/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "a\x00"}},
        ),
    ):
        reply = authed(alice, method, server.url + CLIENT + path, body)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), (path, reply.body)


def test_json_at_the_limits_is_kept_and_served_whole(
    server: RunningServer, alice: Session, bob: Session, room_id: str
) -> None:
    joined = authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})
    assert joined.status == 200, joined.body
    content = {
        "msgtype": "m.text",
        "body": "findme at the limit",
        "deep": nested_value(MAX_DEPTH - 1),
        "big": 2**53 - 1,
        "small": -(2**53) + 1,
    }
    room = f"{server.url}{CLIENT}/rooms/{quote(room_id)}"
    sent = authed(alice, "PUT", f"{room}/send/m.room.message/at-limit", content)
    assert sent.status == 200, sent.body
    event_id = sent.json()["event_id"]

    for reader in (alice, bob):
        sync = authed(reader, "GET", server.url + CLIENT + "/sync")
        assert sync.status == 200, sync.body
        timeline = sync.json()["rooms"]["join"][room_id]["timeline"]["events"]
        assert [e["content"] for e in timeline if e["event_id"] == event_id] == [content]
    messages = authed(bob, "GET", f"{room}/messages?dir=b&limit=5")
    assert [e["content"] for e in messages.json()["chunk"] if e["event_id"] == event_id] == [
        content
    ]
    assert authed(bob, "GET", f"{room}/event/{event_id}").json()["content"] == content
    assert authed(bob, "GET", f"{room}/context/{event_id}").json()["event"]["content"] == content
    search = authed(
        bob,
        "POST",
        server.url + CLIENT + "/search",
        {"search_categories": {"room_events": {"search_term": "findme"}}},
    )
    assert search.status == 200, search.body
    (result,) = search.json()["search_categories"]["room_events"]["results"]
    assert result["result"]["content"] == content


def test_unencodable_event_content_is_bad_json_not_a_server_error(
    server: RunningServer, alice: Session
) -> None:
    # room version 11 keeps the whole create content in the signed form, where floats are
    # not canonical JSON
    reply = authed(
        alice,
        "POST",
        server.url + CLIENT + "/createRoom",
        {"room_version": "11", "creation_content": {"ratio": 1.5}},
    )
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), reply.body


def test_paths_and_queries_with_nul_are_refused(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    # no identifier may hold U+0000; on PostgreSQL each of these was a 500
    user, room = quote(alice.user_id), f"/rooms/{quote(room_id)}"
    for method, path, body in (
        ("PUT", f"{room}/send/m.ro%00om/t1", {"body": "x"}),
        ("PUT", f"{room}/send/m.room.message/t%00", {"body": "x"}),
        ("PUT", f"{room}/state/m.x/a%00b", {}),
        ("GET", f"{room}/event/$a%00", None),
        ("GET", f"{room}/context/$a%00", None),
        ("PUT", f"{room}/redact/$a%00/t", {}),
        ("POST", f"{room}/receipt/m.read/$a%00", {}),
        ("GET", "/rooms/!a%00:test.localhost/state", None),
        ("PUT", f"/user/{user}/account_data/x%00y", {"a": 1}),
        ("PUT", "/directory/room/%23a%00b:test.localhost", {"room_id": room_id}),
        ("POST", "/join/%23a%00:test.localhost", {}),
        ("PUT", "/sendToDevice/m.x/t%00", {"messages": {}}),
        ("GET", "/profile/@a%00:test.localhost", None),
        ("PUT", "/pushrules/global/content/a%00", {"actions": ["notify"], "pattern": "x"}),
        ("GET", f"{room}/messages?dir=b&from=%00", None),
    ):
        reply = authed(alice, method, server.url + CLIENT + path, body)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), (path, reply.body)


def test_query_integers_outside_the_canonical_range_are_refused(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    # past 64 bits these overflowed the databases' integers: 500 on both engines
    admin = make_admin(server.config_path, "limits_admin")
    room = f"{CLIENT}/rooms/{quote(room_id)}"
    for session, method, path in (
        (alice, "GET", f"/_matrix/client/v1/rooms/{quote(room_id)}/timestamp_to_event?dir=f&ts=1"),
        (alice, "GET", f"{room}/messages?dir=b&limit=1"),
        (admin, "POST", "/_synapse/admin/v1/media/delete?before_ts=1"),
        (admin, "DELETE", f"/_synapse/admin/v1/users/{quote(alice.user_id)}/media?limit=1"),
    ):
        for number in ("9007199254740992", "18446744073709551616", "-245405123884109496320"):
            too_big = path[: -len("1")] + number
            reply = authed(session, method, server.url + too_big, {})
            assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), (too_big, reply.body)
        # only ASCII digits are a number here (int() takes "1_0" and Arabic-Indic digits)
        for odd in ("1_0", "%205", "%D9%A3"):
            reply = authed(session, method, server.url + path[: -len("1")] + odd, {})
            assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), (odd, reply.body)
        assert authed(session, method, server.url + path, {}).status == 200, path
