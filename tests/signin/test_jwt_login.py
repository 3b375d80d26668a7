"""Logging in with a JSON web token (jwt_config) over real HTTP on both engines: tokens the
test signs with a shared secret (HS256, with issuer, audience and display name claims) and
with an RSA key (RS256), and every refusal a client can meet."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwk, jwt

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    Session,
    authed,
    register_user_command,
)

LOGIN = CLIENT + "/login"
JWT_LOGIN = "org.matrix.login.jwt"
SECRET = "a shared secret of the token issuer, long enough"
ISSUER = "https://issuer.example"
AUDIENCE = "ranvier-test"
RSA_KEY = jwk.RSAKey.generate_key(2048)
OTHER_RSA_KEY = jwk.RSAKey.generate_key(2048)


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode({"alg": "HS256"}, claims, jwk.OctKey.import_key(secret))


def rs256(claims: dict[str, Any], key: jwk.RSAKey = RSA_KEY) -> str:
    return jwt.encode({"alg": "RS256"}, claims, key)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """alg "none": a token anyone can make."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand, with any bytes as the secret (joserfc refuses a PEM key as one)."""
    signed = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}."
    signed += b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(signature)}"


def good_claims(subject: str, **extra: Any) -> dict[str, Any]:
    return {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, **extra}


def login(server: RunningServer, token: object) -> Reply:
    return request("POST", server.url + LOGIN, {"type": JWT_LOGIN, "token": token})


def session_of(reply: Reply) -> Session:
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


@pytest.fixture(scope="module")
def hs_server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    config = {
        "enabled": True,
        "secret": SECRET,
        "algorithm": "HS256",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "display_name_claim": "name",
    }
    with serving(tmp_path_factory.mktemp("hs"), module_database, jwt_config=config) as running:
        yield running


@pytest.fixture(scope="module")
def rs_server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    public_pem = RSA_KEY.as_pem(private=False).decode()
    config = {"enabled": True, "secret": public_pem, "algorithm": "RS256"}
    with serving(
        tmp_path_factory.mktemp("rs"),
        module_database,
        jwt_config=config,
        # passwords only confirm who is acting; signing in is by token
        password_config={"enabled": "only_for_reauth"},
    ) as running:
        yield running


def test_login_types_list_jwt(hs_server: RunningServer) -> None:
    flows = request("GET", hs_server.url + LOGIN).json()["flows"]
    assert {"type": JWT_LOGIN} in flows


def test_first_login_registers_the_user_with_the_claimed_name(hs_server: RunningServer) -> None:
    first = session_of(login(hs_server, hs256(good_claims("Alice", name="Alice Liddell"))))
    assert first.user_id == "@alice:test.localhost"
    profile = authed(first, "GET", f"{hs_server.url}{CLIENT}/profile/{first.user_id}").json()
    assert profile["displayname"] == "Alice Liddell"
    # a second login is the same account, with a new device
    second = session_of(login(hs_server, hs256(good_claims("alice", name="Someone Else"))))
    assert second.user_id == first.user_id and second.device_id != first.device_id
    profile = authed(second, "GET", f"{hs_server.url}{CLIENT}/profile/{first.user_id}").json()
    assert profile["displayname"] == "Alice Liddell"
    whoami = authed(second, "GET", hs_server.url + CLIENT + "/account/whoami").json()
    assert whoami["user_id"] == first.user_id


def test_subject_may_be_a_full_user_id_of_this_server(hs_server: RunningServer) -> None:
    reply = login(hs_server, hs256(good_claims("@bob:test.localhost")))
    assert session_of(reply).user_id == "@bob:test.localhost"


def test_hand_made_token_is_accepted_when_signed_right(hs_server: RunningServer) -> None:
    """(So the hand-made tokens below are refused for their signature, not their shape.)"""
    reply = login(hs_server, hmac_token(good_claims("frank"), SECRET.encode()))
    assert session_of(reply).user_id == "@frank:test.localhost"


def test_clock_skew_within_the_leeway_is_accepted(hs_server: RunningServer) -> None:
    claims = good_claims("skewed", exp=int(time.time()) - 60)
    assert login(hs_server, hs256(claims)).status == 200


@pytest.mark.parametrize(
    ("what", "token"),
    [
        ("expired", hs256(good_claims("carol", exp=int(time.time()) - 3600))),
        ("not yet valid", hs256(good_claims("carol", nbf=int(time.time()) + 3600))),
        ("another secret", hs256(good_claims("carol"), secret="the wrong secret, also long")),
        ("wrong issuer", hs256(good_claims("carol", iss="https://elsewhere.example"))),
        ("no issuer", hs256({k: v for k, v in good_claims("carol").items() if k != "iss"})),
        ("wrong audience", hs256(good_claims("carol", aud="someone-else"))),
        ("no audience", hs256({k: v for k, v in good_claims("carol").items() if k != "aud"})),
        ("no subject", hs256({k: v for k, v in good_claims("carol").items() if k != "sub"})),
        ("another server's user", hs256(good_claims("@carol:elsewhere.example"))),
        ("another algorithm", rs256(good_claims("carol"))),
        ("not a JWT", "this.is.not-a-token"),
        ("garbage", "garbage"),
    ],
)
def test_refused_tokens(hs_server: RunningServer, what: str, token: str) -> None:
    reply = login(hs_server, token)
    assert reply.status == 403, (what, reply.body)
    assert reply.errcode == "M_FORBIDDEN"
    assert "Invalid JWT" in reply.json()["error"]


def test_refused_tokens_register_nobody(hs_server: RunningServer) -> None:
    login(hs_server, hs256(good_claims("mallory", exp=int(time.time()) - 3600)))
    profile = request("GET", f"{hs_server.url}{CLIENT}/profile/@mallory:test.localhost")
    assert profile.status == 404


def test_missing_token_is_a_bad_request(hs_server: RunningServer) -> None:
    reply = request("POST", hs_server.url + LOGIN, {"type": JWT_LOGIN})
    assert reply.status == 400
    assert login(hs_server, 42).status == 400


def test_rs256_login(rs_server: RunningServer) -> None:
    dave = session_of(login(rs_server, rs256({"sub": "dave"})))
    assert dave.user_id == "@dave:test.localhost"
    # without display_name_claim the localpart is the display name, as for /register
    profile = authed(dave, "GET", f"{rs_server.url}{CLIENT}/profile/{dave.user_id}").json()
    assert profile["displayname"] == "dave"


def test_rs256_refusals(rs_server: RunningServer) -> None:
    forged = login(rs_server, rs256({"sub": "dave"}, key=OTHER_RSA_KEY))
    assert forged.status == 403 and forged.errcode == "M_FORBIDDEN"
    # the classic confusion: an HMAC signed with the public key as the secret
    public_pem = RSA_KEY.as_pem(private=False).decode()
    confused = login(rs_server, hmac_token({"sub": "dave"}, public_pem.encode()))
    assert confused.status == 403 and confused.errcode == "M_FORBIDDEN"
    unsigned = login(rs_server, unsigned_token({"sub": "dave"}))
    assert unsigned.status == 403 and unsigned.errcode == "M_FORBIDDEN"


def test_passwords_only_for_reauth_beside_jwt(rs_server: RunningServer) -> None:
    done = register_user_command(rs_server.config_path, "grace", DEFAULT_PASSWORD)
    assert done.returncode == 0, done.stderr
    flows = [flow["type"] for flow in request("GET", rs_server.url + LOGIN).json()["flows"]]
    assert JWT_LOGIN in flows and "m.login.password" not in flows
    by_password = request(
        "POST",
        rs_server.url + LOGIN,
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "grace"},
            "password": DEFAULT_PASSWORD,
        },
    )
    assert by_password.status == 400 and by_password.errcode == "M_UNKNOWN"
    grace = session_of(login(rs_server, rs256({"sub": "grace"})))
    assert grace.user_id == "@grace:test.localhost"
    # the password still confirms a sensitive action
    url = f"{rs_server.url}{CLIENT}/devices/{grace.device_id}"
    challenge = authed(grace, "DELETE", url, {})
    assert challenge.status == 401
    assert {"stages": ["m.login.password"]} in challenge.json()["flows"]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "grace"},
        "password": DEFAULT_PASSWORD,
        "session": challenge.json()["session"],
    }
    deleted = authed(grace, "DELETE", url, {"auth": auth})
    assert deleted.status == 200, deleted.body
