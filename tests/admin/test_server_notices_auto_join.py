"""Server notices with `auto_join: true`, on both engines: the user is joined to their
notices room rather than invited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin.conftest import ADMIN, NOTICES, call, q
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    make_admin,
    register,
)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    with serving(
        tmp_path_factory.mktemp("hs"),
        module_database,
        **REGISTRATION_CONFIG,
        server_notices={
            **NOTICES,
            "auto_join": True,
            "room_avatar_url": "mxc://test.localhost/room",
        },
    ) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


def test_the_user_is_joined(server: RunningServer, admin: Session) -> None:
    lou = register(server.url, "lou")
    body = {"user_id": lou.user_id, "content": {"msgtype": "m.text", "body": "welcome"}}
    reply = call(server, admin, "POST", ADMIN + "/v1/send_server_notice", body)
    assert reply.status == 200, reply.body
    joined = authed(lou, "GET", server.url + CLIENT + "/joined_rooms").json()["joined_rooms"]
    assert len(joined) == 1
    room_id = joined[0]
    avatar = authed(lou, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/state/m.room.avatar/")
    assert avatar.json() == {"url": "mxc://test.localhost/room"}
    messages = authed(
        lou, "GET", server.url + CLIENT + f"/rooms/{q(room_id)}/messages?dir=b&limit=1"
    ).json()["chunk"]
    assert messages[0]["event_id"] == reply.json()["event_id"]
