"""Registration tokens over real HTTP on both engines: the admin API, the validity check,
and registering with the m.login.registration_token stage, as admins and clients see them."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, authed, make_admin

TOKENS = "/_synapse/admin/v1/registration_tokens"
VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"
STAGE = "m.login.registration_token"


server = module_server(
    enable_registration=True,
    registration_requires_token=True,
)


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "tokenadmin")


def admin_call(
    server: RunningServer, admin: Session, method: str, path: str, body: Any = None
) -> Reply:
    return authed(admin, method, server.url + TOKENS + path, body)


def new_token(server: RunningServer, admin: Session, **body: Any) -> dict[str, Any]:
    reply = admin_call(server, admin, "POST", "/new", body)
    assert reply.status == 200, reply.body
    created: dict[str, Any] = reply.json()
    return created


def token_info(server: RunningServer, admin: Session, token: str) -> dict[str, Any]:
    reply = admin_call(server, admin, "GET", "/" + token)
    assert reply.status == 200, reply.body
    info: dict[str, Any] = reply.json()
    return info


def now_ms() -> int:
    return int(time.time() * 1000)


def register(server: RunningServer, body: dict[str, Any]) -> Reply:
    return request("POST", server.url + CLIENT + "/register", body)


def start_registration(server: RunningServer, username: str) -> str:
    reply = register(server, {"username": username, "password": DEFAULT_PASSWORD})
    assert reply.status == 401, reply.body
    assert reply.json()["flows"] == [{"stages": [STAGE]}]
    session: str = reply.json()["session"]
    return session


def send_token(server: RunningServer, session: str, token: str) -> Reply:
    return register(server, {"auth": {"type": STAGE, "token": token, "session": session}})


# -- admin API --


def test_create_with_defaults_generates_a_16_character_token(
    server: RunningServer, admin: Session
) -> None:
    created = new_token(server, admin)
    assert re.fullmatch(r"[A-Za-z0-9._~-]{16}", created["token"])
    assert created == {
        "token": created["token"],
        "uses_allowed": None,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    assert token_info(server, admin, created["token"]) == created


def test_create_with_chosen_token_length_uses_and_expiry(
    server: RunningServer, admin: Session
) -> None:
    expiry = now_ms() + 3_600_000
    created = new_token(server, admin, token="chosen.T0ken_~-", uses_allowed=3, expiry_time=expiry)
    assert created == {
        "token": "chosen.T0ken_~-",
        "uses_allowed": 3,
        "pending": 0,
        "completed": 0,
        "expiry_time": expiry,
    }
    assert len(new_token(server, admin, length=64)["token"]) == 64
    assert len(new_token(server, admin, length=1, uses_allowed=0)["token"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"token": ""},
        {"token": "x" * 65},
        {"token": "has space"},
        {"token": "sl/ash"},
        {"token": 5},
        {"length": 0},
        {"length": 65},
        {"length": "16"},
        {"length": True},
        {"uses_allowed": -1},
        {"uses_allowed": 1.5},
        {"uses_allowed": "3"},
        {"expiry_time": "tomorrow"},
        {"expiry_time": 1000},
    ],
)
def test_create_refuses_bad_input(server: RunningServer, admin: Session, body: Any) -> None:
    reply = admin_call(server, admin, "POST", "/new", body)
    assert reply.status == 400, body
    assert reply.errcode == "M_INVALID_PARAM"


def test_create_refuses_a_duplicate_token(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="twice")
    reply = admin_call(server, admin, "POST", "/new", {"token": "twice", "uses_allowed": 9})
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"
    assert token_info(server, admin, "twice")["uses_allowed"] is None


def test_update_changes_only_what_is_given(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="updatable", uses_allowed=1)
    expiry = now_ms() + 60_000
    reply = admin_call(server, admin, "PUT", "/updatable", {"expiry_time": expiry})
    assert reply.status == 200
    assert (reply.json()["uses_allowed"], reply.json()["expiry_time"]) == (1, expiry)
    reply = admin_call(server, admin, "PUT", "/updatable", {"uses_allowed": None})
    assert (reply.json()["uses_allowed"], reply.json()["expiry_time"]) == (None, expiry)
    reply = admin_call(server, admin, "PUT", "/updatable", {})
    assert reply.status == 200 and reply.json()["token"] == "updatable"


@pytest.mark.parametrize(
    "body", [{"uses_allowed": -2}, {"uses_allowed": "1"}, {"expiry_time": 5}, {"expiry_time": []}]
)
def test_update_refuses_bad_input(server: RunningServer, admin: Session, body: Any) -> None:
    token = new_token(server, admin, uses_allowed=4)["token"]
    reply = admin_call(server, admin, "PUT", "/" + token, body)
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"
    assert token_info(server, admin, token)["uses_allowed"] == 4


def test_unknown_tokens_are_404(server: RunningServer, admin: Session) -> None:
    for method, body in (("GET", None), ("PUT", {"uses_allowed": 1}), ("DELETE", None)):
        reply = admin_call(server, admin, method, "/nonexistent", body)
        assert reply.status == 404, method
        assert reply.errcode == "M_NOT_FOUND"


def test_delete(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="doomed")
    reply = admin_call(server, admin, "DELETE", "/doomed")
    assert (reply.status, reply.json()) == (200, {})
    assert admin_call(server, admin, "GET", "/doomed").status == 404


def test_list_with_valid_filter(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="list-valid")
    new_token(server, admin, token="list-used-up", uses_allowed=0)
    # expire a token by moving its expiry to just ahead and waiting it out
    new_token(server, admin, token="list-expired")
    admin_call(server, admin, "PUT", "/list-expired", {"expiry_time": now_ms() + 50})
    time.sleep(0.1)

    def listed(query: str) -> set[str]:
        reply = admin_call(server, admin, "GET", query)
        assert reply.status == 200
        return {t["token"] for t in reply.json()["registration_tokens"]}

    everything, valid, invalid = listed(""), listed("?valid=true"), listed("?valid=false")
    assert {"list-valid", "list-used-up", "list-expired"} <= everything
    assert "list-valid" in valid and not {"list-used-up", "list-expired"} & valid
    assert {"list-used-up", "list-expired"} <= invalid and "list-valid" not in invalid
    assert valid | invalid == everything
    reply = admin_call(server, admin, "GET", "?valid=maybe")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


def test_admin_api_refuses_others(server: RunningServer, admin: Session) -> None:
    user = _register_with_new_token(server, admin, "tokennonadmin")
    calls = [("GET", ""), ("POST", "/new"), ("GET", "/x"), ("PUT", "/x"), ("DELETE", "/x")]
    for method, path in calls:
        body = {} if method in ("POST", "PUT") else None
        reply = authed(user, method, server.url + TOKENS + path, body)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), (method, path)
        reply = request(method, server.url + TOKENS + path, body)
        assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN"), (method, path)


# -- validity --


def test_validity(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="valid-one")
    new_token(server, admin, token="none-left", uses_allowed=0)

    def valid(token: str) -> bool:
        reply = request("GET", server.url + VALIDITY + "?token=" + token)
        assert reply.status == 200
        result: bool = reply.json()["valid"]
        return result

    assert valid("valid-one")
    assert not valid("none-left")
    assert not valid("never-created")
    reply = request("GET", server.url + VALIDITY)
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")


# -- registering with a token --


def _register_with_new_token(server: RunningServer, admin: Session, username: str) -> Session:
    token = new_token(server, admin, uses_allowed=1)["token"]
    session = start_registration(server, username)
    reply = send_token(server, session, token)
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def test_registering_with_a_token_completes_a_use(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="for-carol", uses_allowed=1)
    session = start_registration(server, "carol")
    reply = send_token(server, session, "for-carol")
    assert reply.status == 200, reply.body
    assert reply.json()["user_id"] == "@carol:test.localhost"
    info = token_info(server, admin, "for-carol")
    assert (info["pending"], info["completed"]) == (0, 1)
    # used up: the next registration is refused at the stage
    session = start_registration(server, "carol2")
    reply = send_token(server, session, "for-carol")
    assert (reply.status, reply.errcode) == (401, "M_UNAUTHORIZED")


def test_invalid_tokens_are_refused_with_the_uia_body(
    server: RunningServer, admin: Session
) -> None:
    new_token(server, admin, token="soon-expired")
    admin_call(server, admin, "PUT", "/soon-expired", {"expiry_time": now_ms() + 50})
    time.sleep(0.1)
    session = start_registration(server, "dave")
    for token in ("unknown-token", "soon-expired"):
        reply = send_token(server, session, token)
        assert reply.status == 401
        body = reply.json()
        assert body["errcode"] == "M_UNAUTHORIZED"
        assert body["flows"] == [{"stages": [STAGE]}]
        assert body["session"] == session
        assert body["completed"] == []
    # a token that is not a string
    reply = register(server, {"auth": {"type": STAGE, "token": 7, "session": session}})
    assert (reply.status, reply.errcode) == (401, "M_BAD_JSON")
    reply = register(server, {"auth": {"type": STAGE, "session": session}})
    assert (reply.status, reply.errcode) == (401, "M_MISSING_PARAM")


def test_pending_while_a_session_holds_the_token(server: RunningServer, admin: Session) -> None:
    new_token(server, admin, token="held", uses_allowed=1)
    session = start_registration(server, "erin")
    # someone takes the name between the two requests: the stage passes, registration fails
    reply = authed(admin, "PUT", server.url + "/_synapse/admin/v2/users/@erin:test.localhost", {})
    assert reply.status == 201
    reply = send_token(server, session, "held")
    assert (reply.status, reply.errcode) == (400, "M_USER_IN_USE")
    info = token_info(server, admin, "held")
    assert (info["pending"], info["completed"]) == (1, 0)
    # the held use counts: nobody else can take it
    reply = request("GET", server.url + VALIDITY + "?token=held")
    assert reply.json() == {"valid": False}
    other = start_registration(server, "erin2")
    assert send_token(server, other, "held").errcode == "M_UNAUTHORIZED"
    # deleting the token releases everything
    admin_call(server, admin, "DELETE", "/held")
    assert send_token(server, other, "held").errcode == "M_UNAUTHORIZED"
