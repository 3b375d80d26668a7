"""Where devices were last seen from, over real HTTP on both engines: what /devices shows
after a login and after requests, what it leaves out for a device never seen, and request
headers that are not UTF-8 (the access token, the user agent, the forwarded address).

The listener trusts X-Forwarded-For, so a test can speak from any address it likes.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    login,
    make_admin,
    register,
)

SECRET = "a shared secret"
ADMIN = "/_synapse/admin"


server = module_server(
    x_forwarded=True,
    registration_shared_secret=SECRET,
    # so that /profile takes an optional token
    limit_profile_requests_to_users_who_share_rooms=True,
    **REGISTRATION_CONFIG,
)


def now_ms() -> int:
    return int(time.time() * 1000)


def from_address(session: Session, address: str, user_agent: str = "test") -> dict[str, str]:
    return {**session.headers, "X-Forwarded-For": address, "User-Agent": user_agent}


def whoami(server: RunningServer, session: Session, address: str) -> None:
    url = server.url + CLIENT + "/account/whoami"
    assert request("GET", url, headers=from_address(session, address)).status == 200


def listed_devices(server: RunningServer, viewer: Session) -> dict[str, Any]:
    reply = authed(viewer, "GET", server.url + CLIENT + "/devices")
    assert reply.status == 200, reply.body
    return {device["device_id"]: device for device in reply.json()["devices"]}


def one_device(server: RunningServer, viewer: Session, device_id: str) -> Any:
    reply = authed(viewer, "GET", server.url + CLIENT + f"/devices/{device_id}")
    assert reply.status == 200, reply.body
    return reply.json()


def both_views(server: RunningServer, viewer: Session, device_id: str) -> list[Any]:
    """The device as GET /devices and GET /devices/{deviceId} show it to `viewer`."""
    return [listed_devices(server, viewer)[device_id], one_device(server, viewer, device_id)]


def session_of(reply: Reply) -> Session:
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def shared_secret_session(server: RunningServer, localpart: str) -> Session:
    """An account an admin's tool registered with the shared secret, and its session."""
    nonce = request("GET", server.url + ADMIN + "/v1/register").json()["nonce"]
    mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), localpart.encode(), DEFAULT_PASSWORD.encode()]))
    mac.update(b"\x00notadmin")
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": DEFAULT_PASSWORD,
        "admin": False,
        "mac": mac.hexdigest(),
    }
    return session_of(request("POST", server.url + ADMIN + "/v1/register", body))


# -- /devices --


def test_a_login_is_where_its_device_was_last_seen(server: RunningServer) -> None:
    viewer = register(server.url, "lena")
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "lena"},
        "password": DEFAULT_PASSWORD,
    }
    headers = {"X-Forwarded-For": "10.1.0.1", "User-Agent": "login-test"}
    before = now_ms()
    phone = session_of(request("POST", server.url + CLIENT + "/login", body, headers))
    after = now_ms()
    for device in both_views(server, viewer, phone.device_id):
        assert device["last_seen_ip"] == "10.1.0.1"
        assert before <= device["last_seen_ts"] <= after


def test_registration_and_refresh_count_as_seen(server: RunningServer) -> None:
    body = {
        "username": "rory",
        "password": DEFAULT_PASSWORD,
        "auth": {"type": "m.login.dummy"},
        "refresh_token": True,
    }
    before = now_ms()
    reply = request(
        "POST", server.url + CLIENT + "/register", body, {"X-Forwarded-For": "10.1.1.1"}
    )
    first = session_of(reply)
    refresh_token = reply.json()["refresh_token"]
    viewer = login(server.url, "rory")
    for device in both_views(server, viewer, first.device_id):
        assert device["last_seen_ip"] == "10.1.1.1"
        assert device["last_seen_ts"] >= before

    time.sleep(0.005)
    before = now_ms()
    refreshed = request(
        "POST",
        server.url + CLIENT + "/refresh",
        {"refresh_token": refresh_token},
        {"X-Forwarded-For": "10.1.1.2"},
    )
    assert refreshed.status == 200, refreshed.body
    for device in both_views(server, viewer, first.device_id):
        assert device["last_seen_ip"] == "10.1.1.2"
        assert device["last_seen_ts"] >= before


def test_requests_move_last_seen_forward(server: RunningServer) -> None:
    viewer = register(server.url, "mona")
    phone = login(server.url, "mona")
    seen_ts = listed_devices(server, viewer)[phone.device_id]["last_seen_ts"]
    # back and forth between two addresses: the latest request is the one shown, whatever
    # was written to the database before
    for address in ("10.2.0.1", "10.2.0.2", "10.2.0.1", "10.2.0.2", "10.2.0.1"):
        time.sleep(0.005)
        whoami(server, phone, address)
        listed, single = both_views(server, viewer, phone.device_id)
        assert listed == single
        assert listed["last_seen_ip"] == address
        assert listed["last_seen_ts"] > seen_ts
        seen_ts = listed["last_seen_ts"]

    # a device asking about itself sees the request it is making
    before = now_ms()
    reply = request(
        "GET", server.url + CLIENT + "/devices", headers=from_address(phone, "10.2.0.9")
    )
    own = {device["device_id"]: device for device in reply.json()["devices"]}[phone.device_id]
    assert own["last_seen_ip"] == "10.2.0.9"
    assert own["last_seen_ts"] >= before


def test_a_device_never_seen_leaves_the_fields_out(server: RunningServer) -> None:
    # registered by an admin's tool: the tool's request is not the device being used
    unused = shared_secret_session(server, "nina")
    laptop = login(server.url, "nina", initial_device_display_name="laptop")
    assert both_views(server, laptop, unused.device_id) == [
        {"device_id": unused.device_id},
        {"device_id": unused.device_id},
    ]
    for device in both_views(server, laptop, laptop.device_id):
        assert set(device) == {"device_id", "display_name", "last_seen_ip", "last_seen_ts"}
    # once used, it has been seen
    whoami(server, unused, "10.4.0.1")
    for device in both_views(server, laptop, unused.device_id):
        assert device["last_seen_ip"] == "10.4.0.1"


# -- headers that are not UTF-8 --


def raw_get(server: RunningServer, path: str, headers: dict[str, bytes]) -> Reply:
    """A GET with header values sent as the bytes given, whatever they are."""
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.putrequest("GET", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Reply(response.status, response.msg, response.read())
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("localpart", "path"),
    [
        # authentication required
        ("tina", CLIENT + "/account/whoami"),
        ("tom", CLIENT + "/publicRooms"),
        # authentication optional: the token, when sent, must be valid
        ("theo", CLIENT + "/profile/" + quote("@theo:test.localhost")),
    ],
)
def test_an_authorization_header_that_is_not_utf8_is_an_unknown_token(
    server: RunningServer, localpart: str, path: str
) -> None:
    session = register(server.url, localpart)
    for value in (
        b"Bearer \xff\xfe",
        b"Bearer " + session.access_token.encode() + b"\xff",
        b"Bearer \xed\xa0\x80",
        "Bearer caf\u00e9".encode(),
    ):
        reply = raw_get(server, path, {"Authorization": value})
        assert (reply.status, reply.errcode) == (401, "M_UNKNOWN_TOKEN"), (value, reply.body)
    reply = raw_get(server, path, {"Authorization": f"Bearer {session.access_token}".encode()})
    assert reply.status == 200, reply.body


def test_user_agent_and_forwarded_for_that_are_not_utf8(server: RunningServer) -> None:
    admin = make_admin(server.config_path, "root")
    odd = register(server.url, "ursula")
    headers = {
        "Authorization": f"Bearer {odd.access_token}".encode(),
        "User-Agent": b"bot\xff\xfe/1.0",
        "X-Forwarded-For": b"10.3.0.1\xff, 10.0.0.1",
    }
    before = now_ms()
    reply = raw_get(server, CLIENT + "/devices", headers)
    assert reply.status == 200, reply.body
    own = {device["device_id"]: device for device in reply.json()["devices"]}[odd.device_id]
    assert own["last_seen_ip"] == "10.3.0.1\ufffd"

    # the admin's user view reads only what was written: the batch lands within seconds
    path = f"{ADMIN}/v2/users/{quote(odd.user_id)}"
    deadline = time.monotonic() + 30
    while (authed(admin, "GET", server.url + path).json()["last_seen_ts"] or 0) < before:
        assert time.monotonic() < deadline, "the last-seen data was never written"
        time.sleep(0.2)
    assert "last-seen" not in server.log()
    whois = authed(admin, "GET", server.url + f"{ADMIN}/v1/whois/{quote(odd.user_id)}").json()
    connections = whois["devices"][odd.device_id]["sessions"][0]["connections"]
    assert {"ip": "10.3.0.1\ufffd", "user_agent": "bot\ufffd\ufffd/1.0"} in [
        {"ip": c["ip"], "user_agent": c["user_agent"]} for c in connections
    ]


def test_whois_shows_a_connection_at_once(server: RunningServer) -> None:
    admin = make_admin(server.config_path, "whoisadmin")
    user = register(server.url, "olive")
    whoami(server, user, "10.5.0.1")
    whois = authed(admin, "GET", server.url + f"{ADMIN}/v1/whois/{quote(user.user_id)}").json()
    connections = whois["devices"][user.device_id]["sessions"][0]["connections"]
    assert "10.5.0.1" in [c["ip"] for c in connections]
