"""The smaller client-server endpoints, with their options on, over real HTTP on both engines:
TURN credentials, OpenID tokens and the federation userinfo endpoint, mutual rooms, user
reports, login tokens from an existing session, and /.well-known/matrix/support."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote

from tests.integration.client import request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    register,
)

TURN_SECRET = "a coturn static-auth-secret"
SUPPORT = {
    "contacts": [
        {"role": "m.role.admin", "matrix_id": "@admin:test.localhost"},
        {"role": "m.role.security", "email_address": "security@example.org"},
    ],
    "support_page": "https://example.org/support",
}

server = module_server(
    allow_guest_access=True,
    turn_uris=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
    turn_shared_secret=TURN_SECRET,
    turn_user_lifetime="2h",
    turn_allow_guests=False,
    login_via_existing_session={"enabled": True, "token_timeout": "2m"},
    well_known_support=SUPPORT,
    **REGISTRATION_CONFIG,
)


def guest(server: RunningServer) -> Session:
    reply = request("POST", server.url + CLIENT + "/register?kind=guest", {})
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def join(server: RunningServer, session: Session, room_id: str) -> None:
    reply = authed(session, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})
    assert reply.status == 200, reply.body


# -- GET /voip/turnServer


def test_turn_credentials_are_coturns_rest_api_hmac(server: RunningServer, alice: Session) -> None:
    before = int(time.time())
    reply = authed(alice, "GET", server.url + CLIENT + "/voip/turnServer")
    after = int(time.time())
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["uris"] == [
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:5349",
    ]
    assert body["ttl"] == 7200
    expiry, _, user_id = body["username"].partition(":")
    assert user_id == alice.user_id
    assert before + 7200 <= int(expiry) <= after + 7200
    # what coturn computes from its static-auth-secret to check the password
    mac = hmac.new(TURN_SECRET.encode(), body["username"].encode(), hashlib.sha1).digest()
    assert body["password"] == base64.b64encode(mac).decode()


def test_turn_refuses_guests_when_not_allowed(server: RunningServer) -> None:
    reply = authed(guest(server), "GET", server.url + CLIENT + "/voip/turnServer")
    assert reply.status == 403
    assert reply.errcode == "M_GUEST_ACCESS_FORBIDDEN"


def test_turn_needs_an_access_token(server: RunningServer) -> None:
    reply = request("GET", server.url + CLIENT + "/voip/turnServer")
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


# -- OpenID


def request_openid_token(server: RunningServer, session: Session) -> dict[str, Any]:
    url = f"{server.url}{CLIENT}/user/{quote(session.user_id)}/openid/request_token"
    reply = authed(session, "POST", url, {})
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def userinfo(server: RunningServer, token: str | None) -> Any:
    query = "" if token is None else f"?access_token={quote(token)}"
    return request("GET", f"{server.url}/_matrix/federation/v1/openid/userinfo{query}")


def test_openid_token_names_its_user_to_a_third_party(
    server: RunningServer, alice: Session
) -> None:
    body = request_openid_token(server, alice)
    assert body["token_type"] == "Bearer"
    assert body["matrix_server_name"] == "test.localhost"
    assert body["expires_in"] == 3600
    assert isinstance(body["access_token"], str) and body["access_token"]
    # the third party asks the server's federation API, without any credentials of its own
    reply = userinfo(server, body["access_token"])
    assert reply.status == 200, reply.body
    assert reply.json() == {"sub": alice.user_id}
    # an OpenID token is no access token
    reply = request(
        "GET",
        server.url + CLIENT + "/account/whoami",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert reply.status == 401


def test_openid_userinfo_refuses_unknown_and_missing_tokens(
    server: RunningServer, alice: Session
) -> None:
    reply = userinfo(server, "not-a-token")
    assert reply.status == 401
    assert reply.errcode == "M_UNKNOWN_TOKEN"
    # nor does an access token work here
    reply = userinfo(server, alice.access_token)
    assert reply.status == 401
    assert reply.errcode == "M_UNKNOWN_TOKEN"
    reply = userinfo(server, None)
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


def test_openid_token_only_for_oneself(server: RunningServer, alice: Session, bob: Session) -> None:
    url = f"{server.url}{CLIENT}/user/{quote(bob.user_id)}/openid/request_token"
    reply = authed(alice, "POST", url, {})
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    reply = request("POST", url, {})
    assert reply.status == 401


# -- GET /v1/mutual_rooms


def mutual_rooms(server: RunningServer, session: Session, query: str) -> Any:
    return authed(session, "GET", f"{server.url}/_matrix/client/v1/mutual_rooms?{query}")


def test_mutual_rooms_lists_rooms_both_joined(server: RunningServer) -> None:
    dan = register(server.url, "dan")
    erin = register(server.url, "erin")
    shared = sorted(create_room(server.url, dan, preset="public_chat") for _ in range(3))
    for room_id in shared:
        join(server, erin, room_id)
    create_room(server.url, dan)  # dan's alone
    left = create_room(server.url, erin, preset="public_chat")
    join(server, dan, left)
    reply = authed(dan, "POST", f"{server.url}{CLIENT}/rooms/{quote(left)}/leave", {})
    assert reply.status == 200

    reply = mutual_rooms(server, dan, f"user_id={quote(erin.user_id)}")
    assert reply.status == 200, reply.body
    assert reply.json() == {"joined": shared, "count": 3}
    # the unstable path of MSC2666 answers the same
    reply = authed(
        dan,
        "GET",
        f"{server.url}/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"
        f"?user_id={quote(erin.user_id)}",
    )
    assert reply.json() == {"joined": shared, "count": 3}


def test_mutual_rooms_refusals(server: RunningServer, alice: Session, bob: Session) -> None:
    reply = mutual_rooms(server, alice, f"user_id={quote(alice.user_id)}")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = mutual_rooms(server, alice, "user_id=not-a-user")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = mutual_rooms(server, alice, "")
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
    reply = mutual_rooms(server, alice, f"user_id={quote(bob.user_id)}&from=%25%25%25")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    # someone sharing nothing, or unknown: an empty list
    reply = mutual_rooms(server, alice, f"user_id={quote('@nobody:test.localhost')}")
    assert reply.json() == {"joined": [], "count": 0}
    reply = request("GET", f"{server.url}/_matrix/client/v1/mutual_rooms?user_id=@x:y")
    assert reply.status == 401


# -- POST /users/{userId}/report


def report_user(server: RunningServer, session: Session, user_id: str, body: Any) -> Any:
    return authed(session, "POST", f"{server.url}{CLIENT}/users/{quote(user_id)}/report", body)


def test_report_user(server: RunningServer, alice: Session, bob: Session) -> None:
    assert report_user(server, alice, bob.user_id, {"reason": "spam"}).json() == {}
    assert report_user(server, alice, bob.user_id, {"reason": ""}).status == 200
    # as Synapse, unknown and remote users are answered alike, not to tell who exists
    reply = report_user(server, alice, "@nobody:test.localhost", {"reason": "x"})
    assert (reply.status, reply.json()) == (200, {})
    reply = report_user(server, alice, "@someone:elsewhere.example", {"reason": "x"})
    assert (reply.status, reply.json()) == (200, {})


def test_report_user_refusals(server: RunningServer, alice: Session, bob: Session) -> None:
    reply = report_user(server, alice, bob.user_id, {})
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
    reply = report_user(server, alice, bob.user_id, {"reason": 5})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = report_user(server, alice, bob.user_id, {"reason": "x" * 1001})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    assert report_user(server, alice, bob.user_id, {"reason": "x" * 1000}).status == 200
    reply = request("POST", f"{server.url}{CLIENT}/users/{quote(bob.user_id)}/report", {})
    assert reply.status == 401


# -- POST /v1/login/get_token

GET_TOKEN = "/_matrix/client/v1/login/get_token"


def test_login_token_after_reauth_signs_in_another_device(server: RunningServer) -> None:
    frank = register(server.url, "frank")
    first = authed(frank, "POST", server.url + GET_TOKEN, {})
    assert first.status == 401
    challenge = first.json()
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": frank.user_id},
        "password": DEFAULT_PASSWORD,
        "session": challenge["session"],
    }
    reply = authed(frank, "POST", server.url + GET_TOKEN, {"auth": auth})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["expires_in_ms"] == 120_000
    login = {"type": "m.login.token", "token": body["login_token"]}
    reply = request("POST", server.url + CLIENT + "/login", login)
    assert reply.status == 200, reply.body
    assert reply.json()["user_id"] == frank.user_id
    assert reply.json()["device_id"] != frank.device_id
    # single use
    reply = request("POST", server.url + CLIENT + "/login", login)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    # at most one a minute
    auth.pop("session")
    first = authed(frank, "POST", server.url + GET_TOKEN, {})
    auth["session"] = first.json()["session"]
    reply = authed(frank, "POST", server.url + GET_TOKEN, {"auth": auth})
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED")


def test_login_token_refuses_a_wrong_password(server: RunningServer, alice: Session) -> None:
    session = authed(alice, "POST", server.url + GET_TOKEN, {}).json()["session"]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "wrong",
        "session": session,
    }
    reply = authed(alice, "POST", server.url + GET_TOKEN, {"auth": auth})
    assert reply.status == 401
    assert reply.errcode == "M_FORBIDDEN"
    assert "login_token" not in reply.json()
    assert request("POST", server.url + GET_TOKEN, {}).status == 401


def test_capabilities_offer_login_tokens(server: RunningServer, alice: Session) -> None:
    reply = authed(alice, "GET", server.url + CLIENT + "/capabilities")
    assert reply.json()["capabilities"]["m.get_login_token"] == {"enabled": True}


# -- GET /.well-known/matrix/support


def test_well_known_support(server: RunningServer) -> None:
    reply = request("GET", server.url + "/.well-known/matrix/support")
    assert reply.status == 200, reply.body
    assert reply.json() == SUPPORT
