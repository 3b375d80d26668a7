"""Server notices on both engines: the admin's send endpoint, the system user, the user's
notices room (tagged m.server_notice, read-only for them), refusals."""

from __future__ import annotations

import json
from typing import Any

from tests.admin.conftest import ADMIN, NOTICES, call, q, uid
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, register

SEND = ADMIN + "/v1/send_server_notice"


def notice(user_id: str, text: str) -> dict[str, Any]:
    return {"user_id": user_id, "content": {"msgtype": "m.text", "body": text}}


def state_of(server: RunningServer, who: Session, room_id: str) -> dict[tuple[str, str], Any]:
    reply = authed(who, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/state")
    assert reply.status == 200, reply.body
    return {(e["type"], e["state_key"]): e["content"] for e in reply.json()}


def invited_room(server: RunningServer, who: Session, ask: int = 0) -> str:
    # `ask` varies the filter: an identical /sync within sync_response_cache_duration is
    # answered from the cache, as in Synapse
    timeline = q(json.dumps({"room": {"timeline": {"limit": ask + 1}}}))
    reply = authed(who, "GET", server.url + CLIENT + f"/sync?timeout=0&filter={timeline}")
    invites = reply.json()["rooms"]["invite"]
    assert len(invites) == 1, invites
    return next(iter(invites))


def test_notice_reaches_the_user_in_their_notices_room(
    server: RunningServer, admin: Session
) -> None:
    gil = register(server.url, "gil")
    reply = call(server, admin, "POST", SEND, notice(gil.user_id, "Maintenance at noon"))
    assert reply.status == 200, reply.body
    first_id = reply.json()["event_id"]

    room_id = invited_room(server, gil)
    tags = authed(
        gil, "GET", server.url + CLIENT + f"/user/{q(gil.user_id)}/rooms/{q(room_id)}/tags"
    )
    assert "m.server_notice" in tags.json()["tags"]
    joined = authed(gil, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/join", {})
    assert joined.status == 200

    state = state_of(server, gil, room_id)
    assert state[("m.room.name", "")] == {"name": NOTICES["room_name"]}
    assert state[("m.room.topic", "")]["topic"] == NOTICES["room_topic"]
    system = uid("notices")
    assert state[("m.room.member", system)]["displayname"] == "Server Notices"
    assert state[("m.room.member", system)]["avatar_url"] == NOTICES["system_mxid_avatar_url"]
    assert state[("m.room.power_levels", "")]["users_default"] == -10

    event = authed(gil, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/event/{q(first_id)}")
    assert event.json()["sender"] == system
    assert event.json()["content"]["body"] == "Maintenance at noon"
    # the user reads notices but cannot answer
    answer = authed(
        gil,
        "POST",
        server.url + CLIENT + f"/rooms/{q(room_id)}/send/m.room.message",
        {"msgtype": "m.text", "body": "ok"},
    )
    assert (answer.status, answer.json()["errcode"]) == (403, "M_FORBIDDEN")

    # the next notice goes to the same room
    again = call(server, admin, "POST", SEND, notice(gil.user_id, "Done"))
    messages = authed(
        gil, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/messages?dir=b&limit=5"
    ).json()["chunk"]
    assert messages[0]["event_id"] == again.json()["event_id"]
    assert messages[0]["content"]["body"] == "Done"


def test_put_with_a_transaction_id_is_idempotent(server: RunningServer, admin: Session) -> None:
    hal = register(server.url, "hal")
    first = call(server, admin, "PUT", SEND + "/txn1", notice(hal.user_id, "Once"))
    retried = call(server, admin, "PUT", SEND + "/txn1", notice(hal.user_id, "Once"))
    other = call(server, admin, "PUT", SEND + "/txn2", notice(hal.user_id, "Twice"))
    assert first.status == retried.status == other.status == 200
    assert first.json()["event_id"] == retried.json()["event_id"]
    assert other.json()["event_id"] != first.json()["event_id"]


def test_a_state_notice(server: RunningServer, admin: Session) -> None:
    ivy = register(server.url, "ivy")
    body = {
        "user_id": ivy.user_id,
        "type": "m.room.topic",
        "state_key": "",
        "content": {"topic": "New rules"},
    }
    reply = call(server, admin, "POST", SEND, body)
    assert reply.status == 200, reply.body
    room_id = invited_room(server, ivy)
    authed(ivy, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/join", {})
    assert state_of(server, ivy, room_id)[("m.room.topic", "")]["topic"] == "New rules"


def test_refusals(server: RunningServer, admin: Session) -> None:
    jan = register(server.url, "jan")
    assert call(server, jan, "POST", SEND, notice(jan.user_id, "x")).errcode == "M_FORBIDDEN"
    missing = call(server, admin, "POST", SEND, {"user_id": jan.user_id})
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    not_object = call(server, admin, "POST", SEND, {"user_id": jan.user_id, "content": "hi"})
    assert (not_object.status, not_object.errcode) == (400, "M_BAD_JSON")
    remote = call(server, admin, "POST", SEND, notice("@jan:elsewhere.example", "x"))
    assert remote.status == 400
    unknown = call(server, admin, "POST", SEND, notice(uid("nobody"), "x"))
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")


def test_a_user_who_leaves_gets_a_new_room(server: RunningServer, admin: Session) -> None:
    kai = register(server.url, "kai")
    call(server, admin, "POST", SEND, notice(kai.user_id, "one"))
    first_room = invited_room(server, kai)
    left = authed(kai, "POST", server.url + CLIENT + f"/rooms/{q(first_room)}/leave", {})
    assert left.status == 200
    call(server, admin, "POST", SEND, notice(kai.user_id, "two"))
    second_room = invited_room(server, kai, ask=1)
    assert second_room != first_room
