"""Typing, receipts and read markers, presence and send-to-device over real HTTP, and what
other users see of them through /sync, on both engines."""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, login

CLIENT = "/_matrix/client/v3"


server = module_server(
    # every sync here must be computed afresh, not repeated from the response cache
    caches={"sync_response_cache_duration": 0},
    allow_guest_access=True,
    **REGISTRATION_CONFIG,
)


@pytest.fixture(scope="module")
def room(server: RunningServer, alice: Session, bob: Session) -> str:
    """A room alice and bob are joined to; carol is not."""
    reply = authed(alice, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    joined = authed(bob, "POST", f"{server.url}{CLIENT}/join/{room_id}", {})
    assert joined.status == 200, joined.body
    return room_id


def sync(server: RunningServer, session: Session, since: str | None = None, **params: Any) -> Any:
    query = {**({"since": since} if since else {}), **{k: str(v) for k, v in params.items()}}
    reply = authed(session, "GET", f"{server.url}{CLIENT}/sync?{urllib.parse.urlencode(query)}")
    assert reply.status == 200, reply.body
    return reply.json()


def ephemeral(body: Any, room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


def send_message(server: RunningServer, session: Session, room_id: str, txn: str) -> str:
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/{txn}"
    reply = authed(session, "PUT", url, {"msgtype": "m.text", "body": txn})
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


# -- typing -------------------------------------------------------------------------------


def typing_url(server: RunningServer, room_id: str, user_id: str) -> str:
    return f"{server.url}{CLIENT}/rooms/{room_id}/typing/{user_id}"


def test_typing_reaches_sync_and_expires(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    since = sync(server, bob)["next_batch"]
    url = typing_url(server, room, alice.user_id)
    assert authed(alice, "PUT", url, {"typing": True, "timeout": 2000}).status == 200
    body = sync(server, bob, since)
    assert ephemeral(body, room, "m.typing") == [
        {"type": "m.typing", "content": {"user_ids": [alice.user_id]}}
    ]
    # an initial sync shows who types now as well
    assert ephemeral(sync(server, bob), room, "m.typing")[0]["content"]["user_ids"] == [
        alice.user_id
    ]
    # the timeout ends it without a word from alice; a waiting sync wakes for it
    started = time.monotonic()
    later = sync(server, bob, body["next_batch"], timeout=10_000)
    assert time.monotonic() - started < 5
    assert ephemeral(later, room, "m.typing") == [{"type": "m.typing", "content": {"user_ids": []}}]


def test_typing_stops_when_told(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    url = typing_url(server, room, bob.user_id)
    assert authed(bob, "PUT", url, {"typing": True, "timeout": 30_000}).status == 200
    since = sync(server, alice)["next_batch"]
    assert authed(bob, "PUT", url, {"typing": False}).status == 200
    body = sync(server, alice, since)
    assert ephemeral(body, room, "m.typing")[0]["content"]["user_ids"] == []


def test_typing_wakes_a_waiting_sync(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    since = sync(server, bob)["next_batch"]
    result: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        result["body"] = sync(server, bob, since, timeout=8000)
        result["took"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    url = typing_url(server, room, alice.user_id)
    assert authed(alice, "PUT", url, {"typing": True, "timeout": 5000}).status == 200
    waiter.join(15)
    assert result["took"] < 4
    assert ephemeral(result["body"], room, "m.typing")[0]["content"]["user_ids"] == [alice.user_id]
    authed(alice, "PUT", url, {"typing": False})


def test_typing_errors(
    server: RunningServer, alice: Session, bob: Session, carol: Session, room: str
) -> None:
    own = typing_url(server, room, alice.user_id)
    # only for oneself
    assert_error(
        authed(alice, "PUT", typing_url(server, room, bob.user_id), {"typing": True}),
        403,
        "M_FORBIDDEN",
    )
    # only in a joined room
    not_in = typing_url(server, room, carol.user_id)
    assert_error(authed(carol, "PUT", not_in, {"typing": True}), 403, "M_FORBIDDEN")
    unknown_room = typing_url(server, "!nowhere:test", alice.user_id)
    assert_error(authed(alice, "PUT", unknown_room, {"typing": True}), 403, "M_FORBIDDEN")
    assert_error(authed(alice, "PUT", own, {}), 400, "M_MISSING_PARAM")
    assert_error(authed(alice, "PUT", own, {"typing": "yes"}), 400, "M_BAD_JSON")
    assert_error(authed(alice, "PUT", own, {"typing": True, "timeout": "1s"}), 400, "M_BAD_JSON")
    assert_error(authed(alice, "PUT", own, b"{nope"), 400, "M_NOT_JSON")
    assert_error(request("PUT", own, {"typing": True}), 401, "M_MISSING_TOKEN")


# -- receipts and read markers --------------------------------------------------------------


def receipt_url(server: RunningServer, room_id: str, receipt_type: str, event_id: str) -> str:
    quoted = urllib.parse.quote(event_id)
    return f"{server.url}{CLIENT}/rooms/{room_id}/receipt/{receipt_type}/{quoted}"


def receipts_in(body: Any, room_id: str) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for event in ephemeral(body, room_id, "m.receipt"):
        for event_id, by_type in event["content"].items():
            content.setdefault(event_id, {}).update(by_type)
    return content


def test_read_receipts_reach_others_private_ones_only_the_owner(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    first = send_message(server, alice, room, "receipt-1")
    second = send_message(server, alice, room, "receipt-2")
    alice_since = sync(server, alice)["next_batch"]
    bob_since = sync(server, bob)["next_batch"]
    assert authed(bob, "POST", receipt_url(server, room, "m.read", first), {}).status == 200
    reply = authed(bob, "POST", receipt_url(server, room, "m.read.private", second), {})
    assert reply.status == 200 and reply.json() == {}

    seen_by_alice = receipts_in(sync(server, alice, alice_since), room)
    assert set(seen_by_alice) == {first}
    assert isinstance(seen_by_alice[first]["m.read"][bob.user_id]["ts"], int)
    seen_by_bob = receipts_in(sync(server, bob, bob_since), room)
    assert seen_by_bob[second]["m.read.private"][bob.user_id]["ts"] > 0
    # and in an initial sync the same holds
    assert "m.read.private" not in str(receipts_in(sync(server, alice), room))


def test_a_read_receipt_never_moves_backwards(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    earlier = send_message(server, alice, room, "monotonic-1")
    later = send_message(server, alice, room, "monotonic-2")
    assert authed(bob, "POST", receipt_url(server, room, "m.read", later), {}).status == 200
    since = sync(server, alice)["next_batch"]
    # accepted, as Synapse does, but the receipt stays on the later event
    assert authed(bob, "POST", receipt_url(server, room, "m.read", earlier), {}).status == 200
    assert receipts_in(sync(server, alice, since, timeout=0), room) == {}
    current = receipts_in(sync(server, alice), room)
    assert bob.user_id in current[later]["m.read"]
    assert bob.user_id not in current.get(earlier, {}).get("m.read", {})


def test_threaded_receipts_carry_their_thread(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    event_id = send_message(server, alice, room, "threaded")
    since = sync(server, alice)["next_batch"]
    url = receipt_url(server, room, "m.read", event_id)
    assert authed(bob, "POST", url, {"thread_id": "main"}).status == 200
    content = receipts_in(sync(server, alice, since), room)
    assert content[event_id]["m.read"][bob.user_id]["thread_id"] == "main"


def test_a_receipt_without_a_body_is_unthreaded(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    event_id = send_message(server, alice, room, "no-body")
    since = sync(server, alice)["next_batch"]
    assert authed(bob, "POST", receipt_url(server, room, "m.read", event_id)).status == 200
    content = receipts_in(sync(server, alice, since), room)
    assert "thread_id" not in content[event_id]["m.read"][bob.user_id]


def fully_read(server: RunningServer, session: Session, room_id: str) -> Reply:
    url = f"{server.url}{CLIENT}/user/{session.user_id}/rooms/{room_id}/account_data/m.fully_read"
    return authed(session, "GET", url)


def test_fully_read_receipt_moves_the_read_marker(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    event_id = send_message(server, alice, room, "marker")
    since = sync(server, bob)["next_batch"]
    assert authed(bob, "POST", receipt_url(server, room, "m.fully_read", event_id)).status == 200
    assert fully_read(server, bob, room).json() == {"event_id": event_id}
    body = sync(server, bob, since)
    account_data = body["rooms"]["join"][room]["account_data"]["events"]
    assert {"type": "m.fully_read", "content": {"event_id": event_id}} in account_data
    # a marker is not a receipt
    assert not receipts_in(body, room)


def test_read_markers(server: RunningServer, alice: Session, bob: Session, room: str) -> None:
    marker = send_message(server, alice, room, "markers-1")
    read = send_message(server, alice, room, "markers-2")
    since = sync(server, alice)["next_batch"]
    url = f"{server.url}{CLIENT}/rooms/{room}/read_markers"
    reply = authed(bob, "POST", url, {"m.fully_read": marker, "m.read": read})
    assert reply.status == 200 and reply.json() == {}
    assert fully_read(server, bob, room).json() == {"event_id": marker}
    assert bob.user_id in receipts_in(sync(server, alice, since), room)[read]["m.read"]
    private = send_message(server, alice, room, "markers-3")
    assert authed(bob, "POST", url, {"m.read.private": private}).status == 200
    assert private not in receipts_in(sync(server, alice), room)
    assert bob.user_id in receipts_in(sync(server, bob), room)[private]["m.read.private"]


def test_receipt_errors(server: RunningServer, alice: Session, carol: Session, room: str) -> None:
    event_id = send_message(server, alice, room, "receipt-errors")
    read = receipt_url(server, room, "m.read", event_id)
    assert_error(
        authed(alice, "POST", receipt_url(server, room, "m.unknown", event_id), {}),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(
        authed(alice, "POST", receipt_url(server, room, "m.read", "not-an-event"), {}),
        400,
        "M_INVALID_PARAM",
    )
    for thread_id in ("", 5, ["main"]):
        assert_error(authed(alice, "POST", read, {"thread_id": thread_id}), 400, "M_INVALID_PARAM")
    # JSON null is the same as leaving it out
    assert authed(alice, "POST", read, {"thread_id": None}).status == 200
    assert_error(
        authed(
            alice,
            "POST",
            receipt_url(server, room, "m.fully_read", event_id),
            {"thread_id": "main"},
        ),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(authed(carol, "POST", read, {}), 403, "M_FORBIDDEN")
    assert_error(authed(alice, "POST", read, b"[1]"), 400, "M_BAD_JSON")
    assert_error(request("POST", read, {}), 401, "M_MISSING_TOKEN")


def test_read_marker_errors(
    server: RunningServer, alice: Session, carol: Session, room: str
) -> None:
    url = f"{server.url}{CLIENT}/rooms/{room}/read_markers"
    assert_error(authed(alice, "POST", url, {"m.fully_read": 5}), 400, "M_BAD_JSON")
    assert_error(authed(alice, "POST", url, {"m.read": "nope"}), 400, "M_INVALID_PARAM")
    assert_error(authed(carol, "POST", url, {"m.fully_read": "$x"}), 403, "M_FORBIDDEN")
    assert_error(authed(alice, "POST", url, b"{"), 400, "M_NOT_JSON")
    assert_error(request("POST", url, {}), 401, "M_MISSING_TOKEN")


# -- presence -----------------------------------------------------------------------------


def presence_url(server: RunningServer, user_id: str) -> str:
    return f"{server.url}{CLIENT}/presence/{user_id}/status"


def presence_of(body: Any, user_id: str) -> list[dict[str, Any]]:
    events = body.get("presence", {}).get("events", [])
    return [e["content"] for e in events if e["sender"] == user_id]


def test_presence_set_read_and_synced(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    since = sync(server, bob, set_presence="offline")["next_batch"]
    url = presence_url(server, alice.user_id)
    reply = authed(alice, "PUT", url, {"presence": "online", "status_msg": "coding"})
    assert reply.status == 200 and reply.json() == {}
    for viewer in (alice, bob):
        status = authed(viewer, "GET", url).json()
        assert status["presence"] == "online"
        assert status["status_msg"] == "coding"
        assert status["currently_active"] is True
        assert 0 <= status["last_active_ago"] < 60_000
    seen = presence_of(sync(server, bob, since, set_presence="offline"), alice.user_id)
    assert seen and seen[-1]["presence"] == "online" and seen[-1]["status_msg"] == "coding"

    since = sync(server, bob, set_presence="offline")["next_batch"]
    assert authed(alice, "PUT", url, {"presence": "unavailable"}).status == 200
    status = authed(bob, "GET", url).json()
    assert status["presence"] == "unavailable" and "status_msg" not in status
    seen = presence_of(sync(server, bob, since, set_presence="offline"), alice.user_id)
    assert seen[-1]["presence"] == "unavailable"

    assert authed(alice, "PUT", url, {"presence": "offline"}).status == 200
    assert authed(bob, "GET", url).json()["presence"] == "offline"


def test_sync_sets_presence(server: RunningServer, bob: Session) -> None:
    url = presence_url(server, bob.user_id)
    assert authed(bob, "PUT", url, {"presence": "offline"}).status == 200
    sync(server, bob, set_presence="unavailable")
    assert authed(bob, "GET", url).json()["presence"] == "unavailable"
    assert authed(bob, "PUT", url, {"presence": "offline"}).status == 200
    sync(server, bob)
    assert authed(bob, "GET", url).json()["presence"] == "online"
    assert authed(bob, "PUT", url, {"presence": "offline"}).status == 200
    sync(server, bob, set_presence="offline")
    assert authed(bob, "GET", url).json()["presence"] == "offline"


def test_presence_errors(
    server: RunningServer, alice: Session, bob: Session, carol: Session, room: str
) -> None:
    url = presence_url(server, alice.user_id)
    # carol shares no room with alice
    assert_error(authed(carol, "GET", url), 403, "M_FORBIDDEN")
    assert_error(authed(bob, "PUT", url, {"presence": "online"}), 403, "M_FORBIDDEN")
    assert_error(authed(alice, "PUT", url, {"presence": "busy"}), 400, "M_INVALID_PARAM")
    assert_error(authed(alice, "PUT", url, {}), 400, "M_MISSING_PARAM")
    assert_error(
        authed(alice, "PUT", url, {"presence": "online", "status_msg": 3}), 400, "M_BAD_JSON"
    )
    assert_error(authed(alice, "PUT", url, b"nope"), 400, "M_NOT_JSON")
    assert_error(request("GET", url), 401, "M_MISSING_TOKEN")
    assert_error(request("PUT", url, {"presence": "online"}), 401, "M_MISSING_TOKEN")


# -- send-to-device -----------------------------------------------------------------------


def to_device_url(server: RunningServer, event_type: str, txn_id: str) -> str:
    return f"{server.url}{CLIENT}/sendToDevice/{event_type}/{txn_id}"


def to_device_in(body: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = body.get("to_device", {}).get("events", [])
    return events


def test_to_device_delivered_exactly_once(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    since = sync(server, bob)["next_batch"]
    messages = {"messages": {bob.user_id: {bob.device_id: {"secret": 1}}}}
    url = to_device_url(server, "m.test.ping", "once")
    reply = authed(alice, "PUT", url, messages)
    assert reply.status == 200 and reply.json() == {}
    # the same transaction again is a retry: delivered once all the same
    assert authed(alice, "PUT", url, messages).status == 200

    body = sync(server, bob, since)
    assert to_device_in(body) == [
        {"type": "m.test.ping", "sender": alice.user_id, "content": {"secret": 1}}
    ]
    # a retried sync with the same token gets it again: the client may not have had it
    assert to_device_in(sync(server, bob, since)) == to_device_in(body)
    # syncing past it acknowledges it: never again
    after = sync(server, bob, body["next_batch"])
    assert to_device_in(after) == []
    assert to_device_in(sync(server, bob, after["next_batch"])) == []
    assert to_device_in(sync(server, bob)) == []


def test_to_device_wildcard_reaches_every_device(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    second = login(server.url, "bob")
    url = to_device_url(server, "m.test.all", "wildcard")
    assert authed(alice, "PUT", url, {"messages": {bob.user_id: {"*": {"n": 2}}}}).status == 200
    for device in (bob, second):
        assert {"type": "m.test.all", "sender": alice.user_id, "content": {"n": 2}} in (
            to_device_in(sync(server, device))
        )


def test_to_device_wakes_a_waiting_sync(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    since = sync(server, bob)["next_batch"]
    result: dict[str, Any] = {}

    def wait() -> None:
        result["body"] = sync(server, bob, since, timeout=8000)

    waiter = threading.Thread(target=wait)
    started = time.monotonic()
    waiter.start()
    time.sleep(0.5)
    body = {"messages": {bob.user_id: {bob.device_id: {"n": 3}}}}
    assert authed(alice, "PUT", to_device_url(server, "m.test.wake", "wake"), body).status == 200
    waiter.join(15)
    assert time.monotonic() - started < 4
    assert to_device_in(result["body"])[0]["content"] == {"n": 3}


def test_to_device_more_than_a_sync_holds(
    server: RunningServer, alice: Session, carol: Session
) -> None:
    since = sync(server, carol)["next_batch"]
    for n in range(105):
        body = {"messages": {carol.user_id: {carol.device_id: {"n": n}}}}
        assert (
            authed(alice, "PUT", to_device_url(server, "m.test.many", f"many{n}"), body).status
            == 200
        )
    first = sync(server, carol, since)
    assert [e["content"]["n"] for e in to_device_in(first)] == list(range(100))
    rest = sync(server, carol, first["next_batch"])
    assert [e["content"]["n"] for e in to_device_in(rest)] == list(range(100, 105))
    assert to_device_in(sync(server, carol, rest["next_batch"])) == []


def test_to_device_ignores_unknown_devices_and_remote_users(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    messages = {
        bob.user_id: {"NO_SUCH_DEVICE": {}},
        "@nobody:test": {"*": {}},
        "@someone:elsewhere.example": {"DEV": {}},
    }
    url = to_device_url(server, "m.test.void", "void")
    assert authed(alice, "PUT", url, {"messages": messages}).status == 200


def test_guests_may_send_to_devices_only(
    server: RunningServer, alice: Session, bob: Session, room: str
) -> None:
    reply = request("POST", f"{server.url}{CLIENT}/register?kind=guest", {})
    assert reply.status == 200, reply.body
    guest = Session(
        reply.json()["user_id"], reply.json()["access_token"], reply.json()["device_id"]
    )
    since = sync(server, bob)["next_batch"]
    body = {"messages": {bob.user_id: {bob.device_id: {"from": "guest"}}}}
    assert authed(guest, "PUT", to_device_url(server, "m.test.guest", "g1"), body).status == 200
    assert to_device_in(sync(server, bob, since))[0]["sender"] == guest.user_id
    # spec "Guest access" lists none of the others
    for method, url, content in [
        ("PUT", typing_url(server, room, guest.user_id), {"typing": True}),
        ("POST", f"{server.url}{CLIENT}/rooms/{room}/read_markers", {"m.read": "$e"}),
        ("POST", receipt_url(server, room, "m.read", "$e"), {}),
        ("GET", presence_url(server, guest.user_id), None),
        ("PUT", presence_url(server, guest.user_id), {"presence": "online"}),
    ]:
        assert_error(authed(guest, method, url, content), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_to_device_errors(server: RunningServer, alice: Session, bob: Session) -> None:
    url = to_device_url(server, "m.test", "errors")
    assert_error(authed(alice, "PUT", url, {}), 400, "M_MISSING_PARAM")
    assert_error(authed(alice, "PUT", url, {"messages": []}), 400, "M_BAD_JSON")
    assert_error(authed(alice, "PUT", url, {"messages": {bob.user_id: "x"}}), 400, "M_BAD_JSON")
    assert_error(
        authed(alice, "PUT", url, {"messages": {bob.user_id: {bob.device_id: 1}}}),
        400,
        "M_BAD_JSON",
    )
    assert_error(authed(alice, "PUT", url, b"{"), 400, "M_NOT_JSON")
    assert_error(request("PUT", url, {"messages": {}}), 401, "M_MISSING_TOKEN")
