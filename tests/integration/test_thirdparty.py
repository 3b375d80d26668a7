"""Third-party network lookups (spec: "Third-party Networks") on a server with no
application services: no protocol is known and no lookup finds anything, as Synapse with no
bridge; Element asks for the protocols when it opens the room directory."""

from __future__ import annotations

import pytest

from tests.integration.client import request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, Session, authed, register

server = module_server(allow_guest_access=True, **REGISTRATION_CONFIG)


@pytest.fixture(scope="module")
def user(server: RunningServer) -> Session:
    return register(server.url, "lookup")


def guest(server: RunningServer) -> Session:
    reply = request("POST", server.url + CLIENT + "/register?kind=guest", {})
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def test_no_protocols(server: RunningServer, user: Session) -> None:
    reply = authed(user, "GET", server.url + CLIENT + "/thirdparty/protocols")
    assert (reply.status, reply.json()) == (200, {})
    # the r0 path older clients call, and guests, as Synapse
    reply = authed(guest(server), "GET", server.url + "/_matrix/client/r0/thirdparty/protocols")
    assert (reply.status, reply.json()) == (200, {})


def test_protocols_need_a_token(server: RunningServer) -> None:
    reply = request("GET", server.url + CLIENT + "/thirdparty/protocols")
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")


def test_an_unknown_protocol_is_404(server: RunningServer, user: Session) -> None:
    reply = authed(user, "GET", server.url + CLIENT + "/thirdparty/protocol/irc")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    "path",
    [
        "/thirdparty/user/irc?nick=someone",
        "/thirdparty/location/irc?channel=%23matrix",
        "/thirdparty/user?userid=%40someone%3Aexample.org",
        "/thirdparty/location?alias=%23matrix%3Aexample.org",
    ],
)
def test_lookups_find_nothing(server: RunningServer, user: Session, path: str) -> None:
    # spec: 404 when nothing was found
    reply = authed(user, "GET", server.url + CLIENT + path)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), reply.body
