"""The same endpoints with their options left at Synapse's defaults: nothing offered, and
each says so as the spec and Synapse do."""

from __future__ import annotations

from tests.integration.client import request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed


def test_no_turn_server_configured_answers_empty(server: RunningServer, alice: Session) -> None:
    reply = authed(alice, "GET", server.url + CLIENT + "/voip/turnServer")
    assert (reply.status, reply.json()) == (200, {})


def test_login_tokens_are_not_offered(server: RunningServer, alice: Session) -> None:
    reply = authed(alice, "POST", server.url + "/_matrix/client/v1/login/get_token", {})
    assert (reply.status, reply.errcode) == (404, "M_UNRECOGNIZED")
    reply = authed(alice, "GET", server.url + CLIENT + "/capabilities")
    assert reply.json()["capabilities"]["m.get_login_token"] == {"enabled": False}


def test_no_support_information(server: RunningServer) -> None:
    reply = request("GET", server.url + "/.well-known/matrix/support")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
