"""Registration retried with a user-interactive auth session that already registered an
account: the client lost the answer, so it gets the same account again (as Synapse), on both
engines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, REGISTRATION_CONFIG, Session, authed

server = module_server(**REGISTRATION_CONFIG)


def post(server: RunningServer, body: dict[str, Any]) -> Reply:
    return request("POST", server.url + CLIENT + "/register", body)


def whoami(server: RunningServer, body: dict[str, Any]) -> str:
    session = Session(body["user_id"], body["access_token"], body["device_id"])
    reply = authed(session, "GET", server.url + CLIENT + "/account/whoami")
    assert reply.status == 200, reply.body
    user_id: str = reply.json()["user_id"]
    return user_id


@pytest.mark.parametrize("username", [None, "retrier"])
def test_a_retried_registration_answers_the_same_account(
    server: RunningServer, username: str | None
) -> None:
    body: dict[str, Any] = {"password": DEFAULT_PASSWORD}
    if username is not None:
        body["username"] = username
    challenge = post(server, body)
    assert challenge.status == 401
    body["auth"] = {"type": "m.login.dummy", "session": challenge.json()["session"]}

    first = post(server, body)
    assert first.status == 200, first.body
    again = post(server, body)
    assert again.status == 200, again.body

    user_id = first.json()["user_id"]
    if username is not None:
        assert user_id == f"@{username}:test.localhost"
    assert again.json()["user_id"] == user_id
    # each answer is a working login of that one account
    assert whoami(server, first.json()) == user_id
    assert whoami(server, again.json()) == user_id


def test_a_new_session_still_cannot_take_a_registered_name(server: RunningServer) -> None:
    body: dict[str, Any] = {"username": "taken-once", "password": DEFAULT_PASSWORD}
    session = post(server, body).json()["session"]
    done = post(server, {**body, "auth": {"type": "m.login.dummy", "session": session}})
    assert done.status == 200, done.body
    reply = post(server, body)
    assert (reply.status, reply.errcode) == (400, "M_USER_IN_USE")
