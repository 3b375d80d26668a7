"""Redacting all of a user's events (Synapse's admin API, synadm's `user redact`) on both
engines: what is redacted, what is not, the status, and refusals."""

from __future__ import annotations

import time
from typing import Any

from tests.admin.conftest import ADMIN, Synadm, call, q, uid
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, register, send_text


def event(server: RunningServer, who: Session, room_id: str, event_id: str) -> dict[str, Any]:
    reply = authed(who, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/event/{q(event_id)}")
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def wait_for(server: RunningServer, admin: Session, redact_id: str) -> dict[str, Any]:
    for _ in range(100):
        reply = call(server, admin, "GET", f"{ADMIN}/v1/user/redact_status/{redact_id}")
        assert reply.status == 200, reply.body
        status: dict[str, Any] = reply.json()
        if status["status"] in ("completed", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError("the redaction did not finish")


def test_synadm_redacts_everything_a_user_sent(
    server: RunningServer, admin: Session, synadm: Synadm
) -> None:
    spammer = register(server.url, "rd_spammer")
    owner = register(server.url, "rd_owner")
    first = create_room(server.url, owner, preset="public_chat")
    second = create_room(server.url, owner, preset="public_chat")
    for room_id in (first, second):
        assert (
            authed(spammer, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/join", {}).status
            == 200
        )
    spam = [
        send_text(server.url, spammer, room_id, "buy now") for room_id in (first, second, first)
    ]
    kept = send_text(server.url, owner, first, "a real message")

    started = synadm.json("user", "redact", spammer.user_id, "--reason", "spam")
    status = wait_for(server, admin, started["redact_id"])
    assert status == {"status": "completed", "failed_redactions": {}}
    assert synadm.json("user", "redact-status", started["redact_id"]) == status

    for event_id, room_id in zip(spam, (first, second, first), strict=True):
        redacted = event(server, owner, room_id, event_id)
        assert redacted["content"] == {}
        assert redacted["unsigned"]["redacted_because"]["content"].get("reason") == "spam"
        # the user's own redaction, as Synapse sends it for local users
        assert redacted["unsigned"]["redacted_because"]["sender"] == spammer.user_id
    assert event(server, owner, first, kept)["content"]["body"] == "a real message"
    # membership is state: the user is still in the rooms
    members = call(server, admin, "GET", f"{ADMIN}/v1/rooms/{q(first)}/members").json()
    assert spammer.user_id in members["members"]


def test_rooms_and_limit(server: RunningServer, admin: Session) -> None:
    noisy = register(server.url, "rd_noisy")
    here = create_room(server.url, noisy)
    there = create_room(server.url, noisy)
    here_events = [send_text(server.url, noisy, here, f"here {n}") for n in range(3)]
    there_event = send_text(server.url, noisy, there, "there")
    reply = call(
        server,
        admin,
        "POST",
        f"{ADMIN}/v1/user/{q(noisy.user_id)}/redact",
        {"rooms": [here], "limit": 2},
    )
    assert reply.status == 200, reply.body
    assert wait_for(server, admin, reply.json()["redact_id"])["status"] == "completed"
    # the newest two in that room only
    assert [event(server, noisy, here, e)["content"] == {} for e in here_events] == [
        False,
        True,
        True,
    ]
    assert event(server, noisy, there, there_event)["content"]["body"] == "there"


def test_refusals(server: RunningServer, admin: Session) -> None:
    zoe = register(server.url, "rd_zoe")
    path = f"{ADMIN}/v1/user/{q(zoe.user_id)}/redact"
    assert call(server, zoe, "POST", path, {}).errcode == "M_FORBIDDEN"
    for body, errcode in (
        ({"limit": 0}, "M_INVALID_PARAM"),
        ({"limit": "many"}, "M_BAD_JSON"),
        ({"rooms": "!a:test.localhost"}, "M_BAD_JSON"),
        ({"rooms": ["not a room"]}, "M_INVALID_PARAM"),
    ):
        reply = call(server, admin, "POST", path, body)
        assert (reply.status, reply.errcode) == (400, errcode), body
    unknown = call(server, admin, "POST", f"{ADMIN}/v1/user/{q(uid('ghost'))}/redact", {})
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    no_task = call(server, admin, "GET", f"{ADMIN}/v1/user/redact_status/nosuchid")
    assert (no_task.status, no_task.errcode) == (404, "M_NOT_FOUND")
