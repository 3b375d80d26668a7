"""A guest upgrading to a full account over real HTTP on both engines (spec "Guest
access": the ordinary /register flow with `guest_access_token` and the guest's own
localpart as `username`)."""

from __future__ import annotations

from typing import Any

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed

CLIENT = "/_matrix/client/v3"
PASSWORD = "a long enough password for the upgrade"

server = module_server(**REGISTRATION_CONFIG, allow_guest_access=True)


def guest(server: RunningServer) -> Session:
    reply = request("POST", server.url + CLIENT + "/register?kind=guest", {})
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def localpart(session: Session) -> str:
    return session.user_id[1:].split(":")[0]


def register(server: RunningServer, body: dict[str, Any]) -> Reply:
    return request("POST", server.url + CLIENT + "/register", body)


def upgrade(server: RunningServer, username: str, token: str) -> Reply:
    body: dict[str, Any] = {"username": username, "password": PASSWORD, "guest_access_token": token}
    # the first request opens the auth session (SyTest sends it, then retries with `auth`)
    challenge = register(server, body)
    if challenge.status != 401:
        return challenge
    return register(server, {**body, "auth": {"type": "m.login.dummy"}})


def whoami(server: RunningServer, token: str) -> Reply:
    return request(
        "GET", server.url + CLIENT + "/account/whoami", headers={"Authorization": f"Bearer {token}"}
    )


def test_a_guest_upgrades_keeping_its_user_id(server: RunningServer, alice: Session) -> None:
    visitor = guest(server)
    assert whoami(server, visitor.access_token).json()["is_guest"] is True

    done = upgrade(server, localpart(visitor), visitor.access_token)
    assert done.status == 200, done.body
    assert done.json()["user_id"] == visitor.user_id
    upgraded = done.json()["access_token"]
    assert whoami(server, upgraded).json() == {
        "user_id": visitor.user_id,
        "device_id": done.json()["device_id"],
        "is_guest": False,
    }
    # the guest's own session is now a full user's too
    assert whoami(server, visitor.access_token).json()["is_guest"] is False
    # it logs in with the password it chose, and may do what guests may not
    login = request(
        "POST",
        server.url + CLIENT + "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart(visitor)},
            "password": PASSWORD,
        },
    )
    assert login.status == 200, login.body
    room = authed(
        Session(visitor.user_id, upgraded, done.json()["device_id"]),
        "POST",
        server.url + CLIENT + "/createRoom",
        {"preset": "private_chat"},
    )
    assert room.status == 200, room.body

    # a second upgrade of an account that is no longer a guest is refused
    again = upgrade(server, localpart(visitor), visitor.access_token)
    assert again.status == 403 and again.json()["errcode"] == "M_FORBIDDEN", again.body


def test_a_guest_cannot_upgrade_another_user(server: RunningServer, alice: Session) -> None:
    first, second = guest(server), guest(server)
    refused = upgrade(server, localpart(first), second.access_token)
    assert refused.status == 403 and refused.json()["errcode"] == "M_FORBIDDEN", refused.body
    # nor take a non-guest's ID, nor pass an unknown token
    refused = upgrade(server, localpart(alice), second.access_token)
    assert refused.status == 403, refused.body
    refused = upgrade(server, localpart(second), "not-a-token")
    assert refused.status == 403, refused.body
    # the upgrade names the account it upgrades
    missing = register(server, {"password": PASSWORD, "guest_access_token": second.access_token})
    assert missing.status == 400 and missing.json()["errcode"] == "M_MISSING_PARAM", missing.body
    # without the guest's token a numeric localpart stays reserved
    numeric = register(server, {"username": localpart(second), "password": PASSWORD})
    assert numeric.status == 400 and numeric.json()["errcode"] == "M_INVALID_USERNAME"
    assert whoami(server, second.access_token).json()["is_guest"] is True
