"""A server without an `email` section: the email endpoints say the medium is not supported,
a password change needs an access token as before, and no flow offers email."""

from __future__ import annotations

import pytest

from tests.integration.client import request
from tests.integration.conftest import module_database, module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG

__all__ = ["module_database"]

server = module_server(**REGISTRATION_CONFIG)


@pytest.mark.parametrize(
    "path",
    [
        "/register/email/requestToken",
        "/account/password/email/requestToken",
        "/account/3pid/email/requestToken",
    ],
)
def test_request_token_says_email_is_not_supported(server: RunningServer, path: str) -> None:
    body = {"client_secret": "secret", "email": "a@example.org", "send_attempt": 1}
    reply = request("POST", server.url + CLIENT + path, body)
    assert reply.status == 400 and reply.errcode == "M_THREEPID_MEDIUM_NOT_SUPPORTED"


def test_the_links_are_not_served(server: RunningServer) -> None:
    query = "?sid=a&client_secret=b&token=c"
    for path in (
        "/_matrix/client/unstable/registration/email/submit_token",
        "/_synapse/client/password_reset/email/submit_token",
    ):
        reply = request("GET", server.url + path + query)
        assert reply.status == 404 and reply.errcode == "M_UNRECOGNIZED"


def test_no_reset_without_email(server: RunningServer) -> None:
    reply = request("POST", server.url + CLIENT + "/account/password", {"new_password": "x"})
    assert reply.status == 401 and reply.errcode == "M_MISSING_TOKEN"
    flows = request("POST", server.url + CLIENT + "/register", {}).json()["flows"]
    assert flows == [{"stages": ["m.login.dummy"]}]
