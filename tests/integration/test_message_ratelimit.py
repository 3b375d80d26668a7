"""rc_message over real HTTP on both engines, with a tiny bucket: message and state sends are
limited per user with 429 M_LIMIT_EXCEEDED, retry_after_ms and Retry-After; admins are not."""

from __future__ import annotations

import itertools
from urllib.parse import quote

import pytest

from tests.integration.client import Reply
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    make_admin,
    register,
)

# nothing refills during a test: a bucket holds `burst_count` and that is all
SLOW = 0.0001
BURST = 3
_names = (f"sender{i}" for i in itertools.count())
_txns = (f"t{i}" for i in itertools.count())


server = module_server(
    rc_message={"per_second": SLOW, "burst_count": BURST},
    **REGISTRATION_CONFIG,
)


@pytest.fixture
def user(server: RunningServer) -> Session:
    return register(server.url, next(_names))


def create_room(server: RunningServer, session: Session) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", {})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def send(server: RunningServer, session: Session, room_id: str) -> Reply:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{next(_txns)}"
    return authed(session, "PUT", url, {"msgtype": "m.text", "body": "hello"})


def set_topic(server: RunningServer, session: Session, room_id: str) -> Reply:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic"
    return authed(session, "PUT", url, {"topic": "again"})


def assert_limited(reply: Reply) -> None:
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED"), reply.body
    retry_after_ms = reply.json()["retry_after_ms"]
    assert isinstance(retry_after_ms, int) and retry_after_ms > 0
    assert int(reply.headers["Retry-After"]) == -(-retry_after_ms // 1000)


def test_messages_are_limited_per_user(server: RunningServer, user: Session) -> None:
    room_id = create_room(server, user)
    for _ in range(BURST):
        assert send(server, user, room_id).status == 200
    assert_limited(send(server, user, room_id))
    # another user has a bucket of their own
    other = register(server.url, next(_names))
    assert send(server, other, create_room(server, other)).status == 200


def test_state_events_share_the_message_bucket(server: RunningServer, user: Session) -> None:
    room_id = create_room(server, user)
    assert send(server, user, room_id).status == 200
    for _ in range(BURST - 1):
        assert set_topic(server, user, room_id).status == 200
    assert_limited(set_topic(server, user, room_id))
    assert_limited(send(server, user, room_id))


def test_bad_requests_cost_nothing(server: RunningServer, user: Session) -> None:
    room_id = create_room(server, user)
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/bad"
    for _ in range(BURST + 1):
        reply = authed(user, "PUT", url, b"not json")
        assert reply.errcode == "M_NOT_JSON"
    assert send(server, user, room_id).status == 200


def test_admins_are_exempt(server: RunningServer) -> None:
    admin = make_admin(server.config_path, "ratelimitadmin")
    room_id = create_room(server, admin)
    for _ in range(BURST * 2):
        assert send(server, admin, room_id).status == 200
        assert set_topic(server, admin, room_id).status == 200
