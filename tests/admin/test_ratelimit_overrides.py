"""Per-user overrides of rc_message on both engines: read, set, lifted, deleted, kept across
a restart, and what the user's sends meet under each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.admin.conftest import ADMIN, call, q, uid
from tests.integration.homeserver import RunningServer, serving, start_server
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    make_admin,
    register,
)

# three messages, then one every 100 seconds: a fourth within a test is refused
SLOW = {"per_second": 0.01, "burst_count": 3}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    with serving(
        tmp_path_factory.mktemp("hs"), module_database, **REGISTRATION_CONFIG, rc_message=SLOW
    ) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


def override_path(user_id: str) -> str:
    return f"{ADMIN}/v1/users/{q(user_id)}/override_ratelimit"


def sends_until_refused(server: RunningServer, who: Session, room_id: str, tries: int) -> int:
    """How many messages go through before a 429, out of `tries`."""
    for n in range(tries):
        reply = authed(
            who,
            "POST",
            server.url + CLIENT + f"/rooms/{q(room_id)}/send/m.room.message",
            {"msgtype": "m.text", "body": str(n)},
        )
        if reply.status == 429:
            assert reply.errcode == "M_LIMIT_EXCEEDED"
            return n
        assert reply.status == 200, reply.body
    return tries


def test_overrides_change_the_users_message_limit(server: RunningServer, admin: Session) -> None:
    limited = register(server.url, "limited")
    bot = register(server.url, "bot")
    roomy = register(server.url, "roomy")
    assert call(server, admin, "GET", override_path(bot.user_id)).json() == {}

    # without limit: well past rc_message's burst
    reply = call(server, admin, "POST", override_path(bot.user_id), {})
    assert reply.json() == {"messages_per_second": 0, "burst_count": 0}
    assert call(server, admin, "GET", override_path(bot.user_id)).json() == reply.json()
    bot_room = create_room(server.url, bot)
    assert sends_until_refused(server, bot, bot_room, 12) == 12

    # the server's limit for everyone else
    assert sends_until_refused(server, limited, create_room(server.url, limited), 6) < 6

    # a limit of one's own: a larger burst than rc_message's
    own = {"messages_per_second": 1, "burst_count": 8}
    assert call(server, admin, "POST", override_path(roomy.user_id), own).json() == own
    roomy_room = create_room(server.url, roomy)
    sent = sends_until_refused(server, roomy, roomy_room, 14)
    assert 8 <= sent < 14

    # deleted: back to rc_message
    assert call(server, admin, "DELETE", override_path(bot.user_id)).json() == {}
    assert call(server, admin, "GET", override_path(bot.user_id)).json() == {}
    assert sends_until_refused(server, bot, bot_room, 6) < 6


def test_server_notices_off(server: RunningServer, admin: Session) -> None:
    """This module's server has no `server_notices`: the send endpoint says so."""
    target = register(server.url, "unnoticed")
    body = {"user_id": target.user_id, "content": {"msgtype": "m.text", "body": "x"}}
    reply = call(server, admin, "POST", ADMIN + "/v1/send_server_notice", body)
    assert (reply.status, reply.errcode) == (400, "M_UNKNOWN")
    assert "not enabled" in reply.json()["error"]


def test_refusals(server: RunningServer, admin: Session) -> None:
    plain = register(server.url, "plain")
    path = override_path(plain.user_id)
    assert call(server, plain, "GET", path).errcode == "M_FORBIDDEN"
    for body in ({"messages_per_second": -1}, {"burst_count": "ten"}, {"messages_per_second": 1.5}):
        reply = call(server, admin, "POST", path, body)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), body
    assert call(server, admin, "GET", path).json() == {}
    unknown = call(server, admin, "GET", override_path(uid("ghost")))
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    remote = call(server, admin, "POST", override_path("@x:elsewhere.example"), {})
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")


def test_overrides_outlive_a_restart(server: RunningServer, admin: Session) -> None:
    """Last in the module: it stops the module's server."""
    steady = register(server.url, "steady")
    call(server, admin, "POST", override_path(steady.user_id), {"messages_per_second": 0})
    server.stop()
    restarted = start_server(server.config_path, urlsplit(server.url).port or 0)
    try:
        assert call(restarted, admin, "GET", override_path(steady.user_id)).json() == {
            "messages_per_second": 0,
            "burst_count": 0,
        }
        room_id = create_room(restarted.url, steady)
        assert sends_until_refused(restarted, steady, room_id, 10) == 10
    finally:
        restarted.stop()
