"""Reading rooms over real HTTP on both engines: single events, state, members, /messages,
/context, timestamp_to_event, history visibility, redaction, and reports with their admin
API."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed, login, make_admin, register

CLIENT = "/_matrix/client/v3"
ADMIN = "/_synapse/admin/v1"


@pytest.fixture(scope="module")
def eve(server: RunningServer) -> Session:
    return register(server.url, "eve")


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


_counter = iter(range(10**9))


def room(server: RunningServer, who: Session, **body: Any) -> str:
    reply = authed(who, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def url(server: RunningServer, room_id: str, tail: str, **query: Any) -> str:
    quoted = urllib.parse.quote(room_id)
    base = f"{server.url}{CLIENT}/rooms/{quoted}{tail}"
    return base + ("?" + urllib.parse.urlencode(query) if query else "")


def say(server: RunningServer, who: Session, room_id: str, body: str) -> str:
    reply = authed(
        who,
        "PUT",
        url(server, room_id, f"/send/m.room.message/t{next(_counter)}"),
        {"msgtype": "m.text", "body": body},
    )
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def join(server: RunningServer, who: Session, room_id: str) -> None:
    reply = authed(who, "POST", url(server, room_id, "/join"), {})
    assert reply.status == 200, reply.body


def leave(server: RunningServer, who: Session, room_id: str) -> None:
    reply = authed(who, "POST", url(server, room_id, "/leave"), {})
    assert reply.status == 200, reply.body


def set_state(server: RunningServer, who: Session, room_id: str, kind: str, content: Any) -> str:
    reply = authed(who, "PUT", url(server, room_id, f"/state/{kind}"), content)
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def messages(server: RunningServer, who: Session, room_id: str, **query: Any) -> dict[str, Any]:
    reply = authed(who, "GET", url(server, room_id, "/messages", **query))
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def bodies(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]


# --- single events and state ------------------------------------------------------------------


def test_get_event(server: RunningServer, alice: Session, eve: Session) -> None:
    room_id = room(server, alice, preset="private_chat")
    event_id = say(server, alice, room_id, "hello")
    reply = authed(alice, "GET", url(server, room_id, f"/event/{event_id}"))
    assert reply.status == 200, reply.body
    event = reply.json()
    assert event["event_id"] == event_id
    assert event["content"] == {"msgtype": "m.text", "body": "hello"}
    assert event["sender"] == alice.user_id and event["room_id"] == room_id
    assert "age" in event["unsigned"] and "hashes" not in event and "auth_events" not in event
    # the sending device sees its transaction ID
    assert event["unsigned"]["transaction_id"].startswith("t")
    # another device of the same user does not
    other_device = login(server.url, alice.user_id.split(":")[0][1:])
    seen_elsewhere = authed(other_device, "GET", url(server, room_id, f"/event/{event_id}"))
    assert seen_elsewhere.status == 200, seen_elsewhere.body
    assert "transaction_id" not in seen_elsewhere.json()["unsigned"]

    missing = authed(alice, "GET", url(server, room_id, "/event/$nope"))
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    # as Synapse: a non-member is told the event is not found, as if it did not exist
    stranger = authed(eve, "GET", url(server, room_id, f"/event/{event_id}"))
    assert (stranger.status, stranger.errcode) == (404, "M_NOT_FOUND")
    nowhere = authed(eve, "GET", url(server, "!nowhere:test.localhost", f"/event/{event_id}"))
    assert (nowhere.status, nowhere.errcode) == (404, "M_NOT_FOUND")
    unauthenticated = authed(
        Session("@x:test.localhost", "bad", "D"), "GET", url(server, room_id, f"/event/{event_id}")
    )
    assert (unauthenticated.status, unauthenticated.errcode) == (401, "M_UNKNOWN_TOKEN")


def test_get_state(server: RunningServer, alice: Session, eve: Session) -> None:
    room_id = room(server, alice, preset="private_chat", name="Reading room", topic="first")
    set_state(server, alice, room_id, "m.room.topic", {"topic": "second"})
    reply = authed(alice, "GET", url(server, room_id, "/state"))
    assert reply.status == 200, reply.body
    by_key = {(e["type"], e["state_key"]): e for e in reply.json()}
    assert by_key[("m.room.name", "")]["content"] == {"name": "Reading room"}
    assert by_key[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    topic = by_key[("m.room.topic", "")]
    assert topic["content"] == {"topic": "second"}
    assert topic["unsigned"]["prev_content"] == {"topic": "first"}

    content = authed(alice, "GET", url(server, room_id, "/state/m.room.topic"))
    assert content.json() == {"topic": "second"}
    with_key = authed(alice, "GET", url(server, room_id, "/state/m.room.topic/"))
    assert with_key.json() == {"topic": "second"}
    event = authed(alice, "GET", url(server, room_id, "/state/m.room.topic", format="event"))
    assert event.json()["type"] == "m.room.topic" and event.json()["state_key"] == ""
    member = authed(alice, "GET", url(server, room_id, f"/state/m.room.member/{alice.user_id}"))
    assert member.json()["membership"] == "join"

    missing = authed(alice, "GET", url(server, room_id, "/state/m.room.avatar"))
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    bad_format = authed(alice, "GET", url(server, room_id, "/state/m.room.topic", format="x"))
    assert (bad_format.status, bad_format.errcode) == (400, "M_INVALID_PARAM")
    for path in ("/state", "/state/m.room.topic"):
        stranger = authed(eve, "GET", url(server, room_id, path))
        assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")
    nowhere = authed(alice, "GET", url(server, "!nowhere:test.localhost", "/state"))
    assert (nowhere.status, nowhere.errcode) == (403, "M_FORBIDDEN")


def test_former_members_see_state_as_of_their_leave(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = room(server, alice, preset="public_chat", topic="while bob was here")
    join(server, bob, room_id)
    leave(server, bob, room_id)
    set_state(server, alice, room_id, "m.room.topic", {"topic": "after bob left"})
    say(server, alice, room_id, "after bob left")
    topic = authed(bob, "GET", url(server, room_id, "/state/m.room.topic"))
    assert topic.json() == {"topic": "while bob was here"}
    state = authed(bob, "GET", url(server, room_id, "/state")).json()
    mine = [e for e in state if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert mine[0]["content"]["membership"] == "leave"
    # and the timeline ends at the leave
    chunk = messages(server, bob, room_id, limit=50)["chunk"]
    assert "after bob left" not in bodies(chunk)
    assert chunk[0]["type"] == "m.room.member" and chunk[0]["content"]["membership"] == "leave"
    # joined_members is for current members only
    joined = authed(bob, "GET", url(server, room_id, "/joined_members"))
    assert (joined.status, joined.errcode) == (403, "M_FORBIDDEN")


def test_members_and_joined_members(
    server: RunningServer, alice: Session, bob: Session, eve: Session
) -> None:
    room_id = room(server, alice, preset="public_chat")
    join(server, bob, room_id)
    first_page = messages(server, alice, room_id, limit=1)
    # `at` a point before Bob left: he is still joined there
    at = first_page["start"]
    leave(server, bob, room_id)

    def members(**query: Any) -> dict[str, str]:
        reply = authed(alice, "GET", url(server, room_id, "/members", **query))
        assert reply.status == 200, reply.body
        return {e["state_key"]: e["content"]["membership"] for e in reply.json()["chunk"]}

    assert members() == {alice.user_id: "join", bob.user_id: "leave"}
    assert members(membership="join") == {alice.user_id: "join"}
    assert members(not_membership="join") == {bob.user_id: "leave"}
    assert members(at=at) == {alice.user_id: "join", bob.user_id: "join"}

    bad = authed(alice, "GET", url(server, room_id, "/members", membership="sleeping"))
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    bad_at = authed(alice, "GET", url(server, room_id, "/members", at="yesterday"))
    assert (bad_at.status, bad_at.errcode) == (400, "M_INVALID_PARAM")
    stranger = authed(eve, "GET", url(server, room_id, "/members"))
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")

    authed(
        alice,
        "PUT",
        f"{server.url}{CLIENT}/profile/{alice.user_id}/displayname",
        {"displayname": "Alice"},
    )
    joined = authed(alice, "GET", url(server, room_id, "/joined_members"))
    assert joined.status == 200, joined.body
    assert list(joined.json()["joined"]) == [alice.user_id]
    assert set(joined.json()["joined"][alice.user_id]) == {"display_name", "avatar_url"}
    stranger = authed(eve, "GET", url(server, room_id, "/joined_members"))
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")


# --- /messages -----------------------------------------------------------------------------------


def test_messages_round_trip_a_long_history_both_ways(
    server: RunningServer, alice: Session
) -> None:
    room_id = room(server, alice, preset="private_chat")
    sent = [f"m{i}" for i in range(520)]
    for text in sent:
        say(server, alice, room_id, text)

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"dir": "b", "limit": 37}
        if token is not None:
            query["from"] = token
        page = messages(server, alice, room_id, **query)
        pages += 1
        seen += bodies(page["chunk"])
        if "end" not in page:
            break
        token = page["end"]
    assert seen == list(reversed(sent)), "backwards: gaps, duplicates or misorder"
    assert pages >= 520 // 37

    forward: list[str] = []
    token = None
    while True:
        query = {"dir": "f", "limit": 41}
        if token is not None:
            query["from"] = token
        page = messages(server, alice, room_id, **query)
        forward += bodies(page["chunk"])
        if "end" not in page:
            break
        token = page["end"]
    assert forward == sent, "forwards: gaps, duplicates or misorder"

    # `to` stops a page; a token from one direction continues in the other
    newest = messages(server, alice, room_id, limit=10)
    older = messages(server, alice, room_id, **{"from": newest["end"], "limit": 10})
    assert bodies(older["chunk"]) == list(reversed(sent[-20:-10]))
    # forwards from where the older page began: the newest page again
    back_again = messages(server, alice, room_id, **{"from": older["start"], "dir": "f"})
    assert bodies(back_again["chunk"]) == sent[-10:]
    again = messages(server, alice, room_id, **{"from": older["end"], "dir": "f", "limit": 10})
    assert bodies(again["chunk"]) == sent[-20:-10]
    bounded = messages(
        server, alice, room_id, **{"from": newest["start"], "to": older["end"], "limit": 100}
    )
    assert bodies(bounded["chunk"]) == list(reversed(sent[-20:]))
    # a page that reached `to` still carries `end` (as Synapse); the empty page after has none
    beyond = messages(
        server, alice, room_id, **{"from": bounded["end"], "to": older["end"], "limit": 100}
    )
    assert beyond["chunk"] == [] and "end" not in beyond


def test_messages_filter_and_lazy_members(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = room(server, alice, preset="public_chat", topic="filtered")
    join(server, bob, room_id)
    say(server, alice, room_id, "from alice")
    say(server, bob, room_id, "from bob")
    only_messages = json.dumps({"types": ["m.room.message"], "lazy_load_members": True})
    page = messages(server, alice, room_id, filter=only_messages)
    assert {e["type"] for e in page["chunk"]} == {"m.room.message"}
    assert {e["state_key"] for e in page["state"]} == {alice.user_id, bob.user_id}
    only_bob = json.dumps({"senders": [bob.user_id], "types": ["m.room.*"]})
    assert {e["sender"] for e in messages(server, alice, room_id, filter=only_bob)["chunk"]} == {
        bob.user_id
    }
    not_bob = json.dumps({"not_senders": [bob.user_id], "not_types": ["m.room.member"]})
    page = messages(server, alice, room_id, filter=not_bob, limit=50)
    assert bob.user_id not in {e["sender"] for e in page["chunk"]}
    assert "m.room.member" not in {e["type"] for e in page["chunk"]}
    assert page["state"] == []


def test_messages_refusals(server: RunningServer, alice: Session, eve: Session) -> None:
    room_id = room(server, alice, preset="private_chat")
    cases = [
        ({"dir": "sideways"}, 400, "M_INVALID_PARAM"),
        ({"from": "not-a-token"}, 400, "M_INVALID_PARAM"),
        ({"to": "t1"}, 400, "M_INVALID_PARAM"),
        ({"limit": "many"}, 400, "M_INVALID_PARAM"),
        ({"filter": "{not json"}, 400, "M_NOT_JSON"),
        ({"filter": json.dumps({"limit": "ten"})}, 400, "M_BAD_JSON"),
    ]
    for query, status, errcode in cases:
        reply = authed(alice, "GET", url(server, room_id, "/messages", **query))
        assert (reply.status, reply.errcode) == (status, errcode), query
    stranger = authed(eve, "GET", url(server, room_id, "/messages"))
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")


def test_history_visibility_over_http(
    server: RunningServer, alice: Session, bob: Session, eve: Session
) -> None:
    room_id = room(server, alice, preset="public_chat")
    set_state(server, alice, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    secret = say(server, alice, room_id, "before bob")
    join(server, bob, room_id)
    say(server, alice, room_id, "with bob")
    assert bodies(messages(server, bob, room_id, limit=50)["chunk"]) == ["with bob"]
    hidden = authed(bob, "GET", url(server, room_id, f"/event/{secret}"))
    assert (hidden.status, hidden.errcode) == (404, "M_NOT_FOUND")
    context = authed(bob, "GET", url(server, room_id, f"/context/{secret}"))
    assert (context.status, context.errcode) == (404, "M_NOT_FOUND")

    # world_readable lets anyone read from then on, without joining
    set_state(
        server,
        alice,
        room_id,
        "m.room.history_visibility",
        {"history_visibility": "world_readable"},
    )
    say(server, alice, room_id, "for everyone")
    assert "for everyone" in bodies(messages(server, eve, room_id, limit=50)["chunk"])
    assert "with bob" not in bodies(messages(server, eve, room_id, limit=50)["chunk"])
    assert authed(eve, "GET", url(server, room_id, "/state")).status == 200

    # shared (the default): a later joiner reads what came before
    shared = room(server, alice, preset="public_chat")
    say(server, alice, shared, "old news")
    join(server, bob, shared)
    assert bodies(messages(server, bob, shared, limit=50)["chunk"]) == ["old news"]


# --- /context and timestamp_to_event -------------------------------------------------------------


def test_context(server: RunningServer, alice: Session, eve: Session) -> None:
    room_id = room(server, alice, preset="private_chat")
    ids = [say(server, alice, room_id, f"c{i}") for i in range(10)]
    reply = authed(alice, "GET", url(server, room_id, f"/context/{ids[5]}", limit=4))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["event"]["event_id"] == ids[5]
    assert bodies(body["events_before"]) == ["c4", "c3"]
    assert bodies(body["events_after"]) == ["c6", "c7"]
    assert {e["type"] for e in body["state"]} >= {"m.room.create", "m.room.member"}
    # the tokens continue where the context ends
    older = messages(server, alice, room_id, **{"from": body["start"], "limit": 2})
    assert bodies(older["chunk"]) == ["c2", "c1"]
    newer = messages(server, alice, room_id, **{"from": body["end"], "dir": "f", "limit": 2})
    assert bodies(newer["chunk"]) == ["c8", "c9"]

    lazy = json.dumps({"lazy_load_members": True, "types": ["m.room.message"]})
    reply = authed(alice, "GET", url(server, room_id, f"/context/{ids[5]}", filter=lazy))
    members = [e for e in reply.json()["state"] if e["type"] == "m.room.member"]
    assert [e["state_key"] for e in members] == [alice.user_id]

    missing = authed(alice, "GET", url(server, room_id, "/context/$nope"))
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    stranger = authed(eve, "GET", url(server, room_id, f"/context/{ids[5]}"))
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")
    bad = authed(alice, "GET", url(server, room_id, f"/context/{ids[5]}", limit=-1))
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")


def test_timestamp_to_event(server: RunningServer, alice: Session, eve: Session) -> None:
    room_id = room(server, alice, preset="private_chat")
    first = say(server, alice, room_id, "early")
    time.sleep(0.05)
    middle = int(time.time() * 1000)
    time.sleep(0.05)
    second = say(server, alice, room_id, "late")

    def lookup(who: Session = alice, **query: Any) -> Any:
        base = f"{server.url}/_matrix/client/v1/rooms/{urllib.parse.quote(room_id)}"
        return authed(who, "GET", base + "/timestamp_to_event?" + urllib.parse.urlencode(query))

    forwards = lookup(ts=middle, dir="f")
    assert forwards.status == 200, forwards.body
    assert forwards.json()["event_id"] == second
    assert isinstance(forwards.json()["origin_server_ts"], int)
    assert lookup(ts=middle, dir="b").json()["event_id"] == first
    nothing = lookup(ts=int(time.time() * 1000) + 60_000, dir="f")
    assert (nothing.status, nothing.errcode) == (404, "M_NOT_FOUND")
    assert (lookup(dir="f").status, lookup(dir="f").errcode) == (400, "M_MISSING_PARAM")
    assert lookup(ts=middle).errcode == "M_MISSING_PARAM"
    assert lookup(ts=middle, dir="x").errcode == "M_INVALID_PARAM"
    assert lookup(ts="soon", dir="f").errcode == "M_INVALID_PARAM"
    stranger = lookup(eve, ts=middle, dir="f")
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")


# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "6", "10", "11", "12"])
def test_redaction_per_room_version(
    server: RunningServer, alice: Session, bob: Session, eve: Session, version: str
) -> None:
    room_id = room(server, alice, preset="public_chat", room_version=version)
    join(server, bob, room_id)
    # spec: transaction IDs are unique per access token, so each version's test has its own
    v = f"v{version}-"
    mine = say(server, bob, room_id, "bob regrets this")
    alices = say(server, alice, room_id, "alice's words")

    # Bob (power 0) may not redact Alice's event, nor an unknown one
    refused = authed(bob, "PUT", url(server, room_id, f"/redact/{alices}/{v}r1"), {})
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    unknown = authed(bob, "PUT", url(server, room_id, f"/redact/$unknown/{v}r2"), {})
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    stranger = authed(eve, "PUT", url(server, room_id, f"/redact/{mine}/{v}r3"), {})
    assert (stranger.status, stranger.errcode) == (403, "M_FORBIDDEN")
    bad = authed(bob, "PUT", url(server, room_id, f"/redact/{mine}/{v}r4"), {"reason": 5})
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")

    own = authed(bob, "PUT", url(server, room_id, f"/redact/{mine}/{v}r5"), {"reason": "oops"})
    assert own.status == 200, own.body
    again = authed(bob, "PUT", url(server, room_id, f"/redact/{mine}/{v}r5"), {"reason": "oops"})
    assert again.json()["event_id"] == own.json()["event_id"]
    by_admin = authed(alice, "PUT", url(server, room_id, f"/redact/{alices}/{v}r6"), {})
    assert by_admin.status == 200, by_admin.body

    served = authed(alice, "GET", url(server, room_id, f"/event/{mine}")).json()
    assert served["content"] == {}
    because = served["unsigned"]["redacted_because"]
    assert because["event_id"] == own.json()["event_id"]
    assert served["unsigned"]["redacted_by"] == own.json()["event_id"]  # Synapse's extra
    assert because["content"]["reason"] == "oops"
    assert because["redacts"] == mine
    if version in {"11", "12"}:
        assert because["content"]["redacts"] == mine
    page = messages(server, bob, room_id, limit=10)
    by_id = {e["event_id"]: e for e in page["chunk"]}
    assert by_id[alices]["content"] == {}
    assert by_id[alices]["unsigned"]["redacted_because"]["sender"] == alice.user_id
    redaction = by_id[own.json()["event_id"]]
    assert redaction["type"] == "m.room.redaction" and redaction["redacts"] == mine


def test_a_redaction_by_post_without_a_transaction_id(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    # r0's form, which Synapse still serves: each POST is a redaction of its own
    room_id = room(server, alice, preset="public_chat")
    join(server, bob, room_id)
    words = say(server, bob, room_id, "to be taken back")
    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        path = url(server, room_id, f"/redact/{urllib.parse.quote(words)}").replace(CLIENT, prefix)
        first = authed(bob, "POST", path, {"reason": "oops"})
        second = authed(bob, "POST", path, {})
        assert first.status == second.status == 200, (first.body, second.body)
        assert first.json()["event_id"] != second.json()["event_id"]
    served = authed(alice, "GET", url(server, room_id, f"/event/{words}")).json()
    assert served["content"] == {}
    refused = authed(bob, "POST", url(server, room_id, "/redact/$nope"), {})
    assert (refused.status, refused.errcode) == (404, "M_NOT_FOUND")


# --- reports -------------------------------------------------------------------------------------


def test_reports_and_the_admin_api(
    server: RunningServer, alice: Session, bob: Session, eve: Session, admin: Session
) -> None:
    room_id = room(server, alice, preset="public_chat", name="Reported room")
    join(server, bob, room_id)
    event_id = say(server, alice, room_id, "offensive")

    def report(who: Session, target: str, body: Any, where: str = room_id) -> Any:
        return authed(who, "POST", url(server, where, f"/report/{target}"), body)

    ok = report(bob, event_id, {"reason": "rude", "score": -100})
    assert (ok.status, ok.json()) == (200, {})
    assert report(bob, event_id, {}).status == 200
    assert report(eve, event_id, {"reason": "x"}).errcode == "M_NOT_FOUND"
    assert report(bob, "$nope", {"reason": "x"}).errcode == "M_NOT_FOUND"
    assert report(bob, event_id, {"reason": "x"}, "!other:test.localhost").status == 404
    assert report(bob, event_id, {"score": 5}).errcode == "M_INVALID_PARAM"
    assert report(bob, event_id, {"reason": ["list"]}).errcode == "M_BAD_JSON"
    assert report(bob, event_id, b"nope").errcode == "M_NOT_JSON"

    room_report = authed(eve, "POST", url(server, room_id, "/report"), {"reason": "spam room"})
    assert (room_report.status, room_report.json()) == (200, {})
    no_reason = authed(eve, "POST", url(server, room_id, "/report"), {})
    assert (no_reason.status, no_reason.errcode) == (400, "M_MISSING_PARAM")
    unknown = authed(eve, "POST", url(server, "!nope:test.localhost", "/report"), {"reason": "x"})
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")

    listing = authed(admin, "GET", f"{server.url}{ADMIN}/event_reports?room_id={room_id}")
    assert listing.status == 200, listing.body
    body = listing.json()
    assert body["total"] == 2 and "next_token" not in body
    newest, oldest = body["event_reports"]
    assert oldest["reason"] == "rude" and oldest["score"] == -100
    assert newest["reason"] is None
    assert oldest["user_id"] == bob.user_id and oldest["sender"] == alice.user_id
    assert oldest["name"] == "Reported room" and oldest["event_id"] == event_id
    assert oldest["room_id"] == room_id and isinstance(oldest["received_ts"], int)

    first = authed(admin, "GET", f"{server.url}{ADMIN}/event_reports?limit=1&dir=f")
    assert first.json()["next_token"] == 1 and len(first.json()["event_reports"]) == 1
    by_user = authed(admin, "GET", f"{server.url}{ADMIN}/event_reports?user_id=@eve")
    assert by_user.json()["total"] == 0
    by_sender = authed(
        admin,
        "GET",
        f"{server.url}{ADMIN}/event_reports?event_sender_user_id={alice.user_id}",
    )
    assert by_sender.json()["total"] >= 2

    report_id = oldest["id"]
    detail = authed(admin, "GET", f"{server.url}{ADMIN}/event_reports/{report_id}")
    assert detail.status == 200, detail.body
    assert detail.json()["event_json"]["content"]["body"] == "offensive"
    assert detail.json()["id"] == report_id

    for path, status, errcode in [
        ("/event_reports/abc", 400, "M_INVALID_PARAM"),
        ("/event_reports/999999", 404, "M_NOT_FOUND"),
        ("/event_reports?limit=-1", 400, "M_INVALID_PARAM"),
        ("/event_reports?from=-1", 400, "M_INVALID_PARAM"),
        ("/event_reports?dir=up", 400, "M_INVALID_PARAM"),
    ]:
        reply = authed(admin, "GET", f"{server.url}{ADMIN}{path}")
        assert (reply.status, reply.errcode) == (status, errcode), path
    not_admin = authed(bob, "GET", f"{server.url}{ADMIN}/event_reports")
    assert (not_admin.status, not_admin.errcode) == (403, "M_FORBIDDEN")
    not_admin = authed(bob, "DELETE", f"{server.url}{ADMIN}/event_reports/{report_id}")
    assert (not_admin.status, not_admin.errcode) == (403, "M_FORBIDDEN")

    deleted = authed(admin, "DELETE", f"{server.url}{ADMIN}/event_reports/{report_id}")
    assert (deleted.status, deleted.json()) == (200, {})
    gone = authed(admin, "DELETE", f"{server.url}{ADMIN}/event_reports/{report_id}")
    assert (gone.status, gone.errcode) == (404, "M_NOT_FOUND")
    assert authed(admin, "GET", f"{server.url}{ADMIN}/event_reports/{report_id}").status == 404
