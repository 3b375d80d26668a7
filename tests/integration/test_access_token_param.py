"""The deprecated `access_token` query parameter, over real HTTP on both engines: it
authenticates like the Authorization header on every kind of endpoint (reads, writes,
authenticated media, optional authentication), sending both is refused as Synapse refuses
it, and the token never reaches the server's log."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.integration.client import request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, Session, authed, register
from tests.integration.media_helpers import AUTHED, upload

server = module_server(
    # so that /profile takes an optional token
    limit_profile_requests_to_users_who_share_rooms=True,
    **REGISTRATION_CONFIG,
)


@pytest.fixture(scope="module")
def dora(server: RunningServer) -> Session:
    return register(server.url, "dora")


def with_token(url: str, token: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}access_token={quote(token, safe='')}"


def test_query_parameter_authenticates(server: RunningServer, dora: Session) -> None:
    reply = request("GET", with_token(server.url + CLIENT + "/account/whoami", dora.access_token))
    assert reply.status == 200, reply.body
    assert reply.json()["user_id"] == dora.user_id
    assert reply.json()["device_id"] == dora.device_id


def test_query_parameter_authenticates_writes(server: RunningServer, dora: Session) -> None:
    created = authed(dora, "POST", server.url + CLIENT + "/createRoom", {})
    room_id = created.json()["room_id"]
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/send/m.room.message/q1"
    reply = request("PUT", with_token(url, dora.access_token), {"msgtype": "m.text", "body": "hi"})
    assert reply.status == 200, reply.body
    event_url = server.url + CLIENT + f"/rooms/{quote(room_id)}/event/{reply.json()['event_id']}"
    event = request("GET", with_token(event_url, dora.access_token))
    assert event.json()["sender"] == dora.user_id


def test_query_parameter_alongside_other_parameters(server: RunningServer, dora: Session) -> None:
    url = server.url + CLIENT + "/sync?timeout=0&access_token=" + quote(dora.access_token)
    reply = request("GET", url)
    assert reply.status == 200, reply.body
    assert "next_batch" in reply.json()


def test_header_and_query_together_are_refused(server: RunningServer, dora: Session) -> None:
    # even the same token twice: Synapse answers 401 M_MISSING_TOKEN
    url = with_token(server.url + CLIENT + "/account/whoami", dora.access_token)
    reply = request("GET", url, headers=dora.headers)
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


def test_unknown_token_in_query(server: RunningServer) -> None:
    reply = request("GET", with_token(server.url + CLIENT + "/account/whoami", "not-a-token"))
    assert reply.status == 401
    assert reply.errcode == "M_UNKNOWN_TOKEN"


def test_empty_query_token_is_unknown_not_missing(server: RunningServer) -> None:
    reply = request("GET", server.url + CLIENT + "/account/whoami?access_token=")
    assert reply.status == 401
    assert reply.errcode == "M_UNKNOWN_TOKEN"


def test_no_token_anywhere_is_missing(server: RunningServer) -> None:
    reply = request("GET", server.url + CLIENT + "/account/whoami")
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


def test_logged_out_token_in_query_is_unknown(server: RunningServer) -> None:
    eve = register(server.url, "eve")
    assert authed(eve, "POST", server.url + CLIENT + "/logout", {}).status == 200
    reply = request("GET", with_token(server.url + CLIENT + "/account/whoami", eve.access_token))
    assert reply.status == 401
    assert reply.errcode == "M_UNKNOWN_TOKEN"


def test_authenticated_media_takes_the_query_parameter(
    server: RunningServer, dora: Session
) -> None:
    uploaded = upload(server.url, dora, b"some bytes", "text/plain")
    assert uploaded.status == 200, uploaded.body
    media = uploaded.json()["content_uri"].removeprefix("mxc://")
    url = server.url + AUTHED + f"/download/{media}"
    assert request("GET", url).errcode == "M_MISSING_TOKEN"
    reply = request("GET", with_token(url, dora.access_token))
    assert reply.status == 200
    assert reply.body == b"some bytes"


def test_optional_authentication_checks_a_query_token(server: RunningServer, dora: Session) -> None:
    # with lookups limited to users who share a room, /profile takes an optional token:
    # one sent in the query counts, and must be valid
    url = server.url + CLIENT + f"/profile/{quote(dora.user_id)}"
    reply = request("GET", with_token(url, "not-a-token"))
    assert reply.status == 401
    assert reply.errcode == "M_UNKNOWN_TOKEN"
    assert request("GET", with_token(url, dora.access_token)).status == 200


def test_token_never_reaches_the_log(server: RunningServer, dora: Session) -> None:
    # a request that succeeds, one refused, and one on a path nobody serves
    request("GET", with_token(server.url + CLIENT + "/account/whoami", dora.access_token))
    request(
        "GET",
        with_token(server.url + CLIENT + "/account/whoami", dora.access_token),
        headers=dora.headers,
    )
    request("GET", with_token(server.url + CLIENT + "/no/such/path", dora.access_token))
    log = server.log()
    assert "/account/whoami" in log, "the access lines are written"
    assert "/no/such/path" in log
    assert dora.access_token not in log
