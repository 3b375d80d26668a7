"""With the email section but without `email.enable_notifs`, email pushers are refused and
no unsubscribe page is served; on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.client import request
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, authed, register
from tests.notify.conftest import add_validated_email, email_section
from tests.notify.mailbox import Mailbox
from tests.notify.test_email_notifications import _email_pusher


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any], mailbox: Mailbox
) -> Iterator[RunningServer]:
    email = {**email_section(mailbox), "enable_notifs": False}
    with serving(
        tmp_path_factory.mktemp("hs"), module_database, **REGISTRATION_CONFIG, email=email
    ) as running:
        yield running


def test_email_pushers_are_refused_without_enable_notifs(server: RunningServer) -> None:
    alice = register(server.url, "alice")
    add_validated_email(server, alice.user_id, "alice@mail.example.org")
    reply = authed(
        alice,
        "POST",
        server.url + CLIENT + "/pushers/set",
        _email_pusher("alice@mail.example.org"),
    )
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    assert authed(alice, "GET", server.url + CLIENT + "/pushers").json()["pushers"] == []
    page = request("GET", server.url + "/_synapse/client/unsubscribe?u=a&p=b&access_token=c")
    assert (page.status, page.errcode) == (404, "M_UNRECOGNIZED")
