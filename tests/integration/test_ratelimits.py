"""Rate limits over real HTTP on both engines, with small buckets: 429 M_LIMIT_EXCEEDED with
retry_after_ms and Retry-After, per client IP, per account and per failed attempt.

The listener trusts X-Forwarded-For, so each test speaks from its own address and the
per-IP buckets of one test do not spill into the next.
"""

from __future__ import annotations

import itertools

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    register_user_command,
)

# nothing refills during a test: a bucket holds `burst_count` and that is all
SLOW = 0.0001
_addresses = (f"10.9.{i // 250}.{i % 250 + 1}" for i in itertools.count())


server = module_server(
    x_forwarded=True,
    rc_registration={"per_second": SLOW, "burst_count": 2},
    rc_registration_token_validity={"per_second": SLOW, "burst_count": 2},
    rc_login={
        "address": {"per_second": SLOW, "burst_count": 3},
        "account": {"per_second": SLOW, "burst_count": 2},
        "failed_attempts": {"per_second": SLOW, "burst_count": 2},
    },
    registration_requires_token=True,
    allow_guest_access=True,
    **REGISTRATION_CONFIG,
)


def new_address() -> str:
    return next(_addresses)


def login(server: RunningServer, user: str, password: str, address: str) -> Reply:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    return request(
        "POST", server.url + CLIENT + "/login", body, {"X-Forwarded-For": f"{address}, 10.0.0.1"}
    )


def assert_limited(reply: Reply) -> None:
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED"), reply.body
    retry_after_ms = reply.json()["retry_after_ms"]
    assert isinstance(retry_after_ms, int) and retry_after_ms > 0
    assert int(reply.headers["Retry-After"]) == -(-retry_after_ms // 1000)


def make_user(server: RunningServer, localpart: str) -> None:
    done = register_user_command(server.config_path, localpart, DEFAULT_PASSWORD)
    assert done.returncode == 0, done.stderr


def test_login_attempts_per_address(server: RunningServer) -> None:
    make_user(server, "addr-user")
    address = new_address()
    assert login(server, "addr-user", DEFAULT_PASSWORD, address).status == 200
    assert login(server, "addr-user", "wrong", address).status == 403
    assert login(server, "nobody", "wrong", address).status == 403
    assert_limited(login(server, "addr-user", DEFAULT_PASSWORD, address))
    # another address has its own bucket
    assert login(server, "addr-user", DEFAULT_PASSWORD, new_address()).status == 200


def test_failed_attempts_per_account(server: RunningServer) -> None:
    make_user(server, "victim")
    make_user(server, "bystander")
    assert login(server, "victim", "guess 1", new_address()).status == 403
    assert login(server, "victim", "guess 2", new_address()).status == 403
    # locked against guessing, even with the right password, from anywhere
    assert_limited(login(server, "victim", DEFAULT_PASSWORD, new_address()))
    assert_limited(login(server, "VICTIM", DEFAULT_PASSWORD, new_address()))
    assert login(server, "bystander", DEFAULT_PASSWORD, new_address()).status == 200


def test_successful_logins_per_account(server: RunningServer) -> None:
    make_user(server, "busy")
    assert login(server, "busy", DEFAULT_PASSWORD, new_address()).status == 200
    assert login(server, "@busy:test.localhost", DEFAULT_PASSWORD, new_address()).status == 200
    assert_limited(login(server, "busy", DEFAULT_PASSWORD, new_address()))


def test_token_validity_checks_per_address(server: RunningServer) -> None:
    url = server.url + "/_matrix/client/v1/register/m.login.registration_token/validity?token=x"
    address = {"X-Forwarded-For": new_address()}
    for _ in range(2):
        reply = request("GET", url, headers=address)
        assert reply.json() == {"valid": False}
    assert_limited(request("GET", url, headers=address))
    assert request("GET", url, headers={"X-Forwarded-For": new_address()}).status == 200


def test_registrations_per_address(server: RunningServer) -> None:
    address = {"X-Forwarded-For": new_address()}
    url = server.url + CLIENT + "/register"
    # guests need no token; each one created counts
    for _ in range(2):
        assert request("POST", url + "?kind=guest", {}, address).status == 200
    body = {"username": "toomany", "password": DEFAULT_PASSWORD}
    assert_limited(request("POST", url, body, address))
    # the user-interactive auth round trips of another address cost nothing
    other = {"X-Forwarded-For": new_address()}
    for _ in range(3):
        assert request("POST", url, body, other).status == 401
