"""A server with the email section but without `email.enable_notifs`, and a tight
`rc_third_party_invite`: email pushers are refused and no unsubscribe page is served;
invites by email address past the limit are refused with 429; on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import request
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, authed, create_room, register
from tests.notify.conftest import add_validated_email, email_section
from tests.notify.mailbox import Mailbox
from tests.notify.test_email_notifications import _email_pusher


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any], mailbox: Mailbox
) -> Iterator[RunningServer]:
    email = {**email_section(mailbox), "enable_notifs": False}
    with serving(
        tmp_path_factory.mktemp("hs"),
        module_database,
        **REGISTRATION_CONFIG,
        email=email,
        rc_third_party_invite={"per_second": 0.001, "burst_count": 2},
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


def test_invites_by_email_are_rate_limited_per_user(server: RunningServer) -> None:
    carol, dave = register(server.url, "carol"), register(server.url, "dave")
    room_id = create_room(server.url, carol)
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/invite"
    body = {
        # nothing answers there: each allowed invite fails reaching it
        "id_server": "127.0.0.1:1",
        "id_access_token": "token",
        "medium": "email",
        "address": "someone@mail.example.org",
    }
    assert [authed(carol, "POST", url, body).status for _ in range(2)] == [502, 502]
    limited = authed(carol, "POST", url, body)
    assert (limited.status, limited.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert limited.json()["retry_after_ms"] > 0
    # the limit is per inviting user
    assert authed(dave, "POST", url, body).status == 403  # dave is not in the room
