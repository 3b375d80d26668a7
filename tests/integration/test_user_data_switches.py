"""The profile and capability switches of homeserver.yaml, observed over real HTTP on both
engines: one server with every switch turned away from its default."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, make_admin, register

V3 = "/_matrix/client/v3"


server = module_server(
    enable_registration=True,
    enable_registration_without_verification=True,
    enable_set_displayname=False,
    enable_set_avatar_url=False,
    enable_3pid_changes=False,
    require_auth_for_profile_requests=True,
    limit_profile_requests_to_users_who_share_rooms=True,
    default_room_version="11",
    filter_timeline_limit=5,
)


_counter = iter(range(1_000_000))


@pytest.fixture
def alice(server: RunningServer) -> Session:
    return register(server.url, f"alice{next(_counter)}", password="correct horse battery")


@pytest.fixture
def bob(server: RunningServer) -> Session:
    return register(server.url, f"bob{next(_counter)}", password="correct horse battery")


def call(
    server: RunningServer, method: str, path: str, session: Session | None, body: Any = None
) -> Reply:
    headers = {"Authorization": f"Bearer {session.access_token}"} if session else {}
    return request(method, server.url + V3 + path, body, headers)


def u(user_id: str) -> str:
    return quote(user_id, safe="")


def test_display_name_cannot_be_changed_once_set(server: RunningServer, alice: Session) -> None:
    path = f"/profile/{u(alice.user_id)}/displayname"
    for method, body in (("PUT", {"displayname": "New"}), ("DELETE", None)):
        reply = call(server, method, path, alice, body)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    localpart = alice.user_id[1:].split(":")[0]
    assert call(server, "GET", path, alice).json() == {"displayname": localpart}


def test_admins_are_not_bound_by_the_switches(server: RunningServer, bob: Session) -> None:
    admin = make_admin(server.config_path, f"admin{next(_counter)}")
    for user in (admin, bob):
        path = f"/profile/{u(user.user_id)}/displayname"
        assert call(server, "PUT", path, admin, {"displayname": "Set by admin"}).status == 200
        assert call(server, "GET", path, user).json() == {"displayname": "Set by admin"}


def test_first_avatar_may_be_set_but_not_changed(server: RunningServer, alice: Session) -> None:
    path = f"/profile/{u(alice.user_id)}/avatar_url"
    assert call(server, "PUT", path, alice, {"avatar_url": "mxc://test.localhost/a"}).status == 200
    reply = call(server, "PUT", path, alice, {"avatar_url": "mxc://test.localhost/b"})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert call(server, "GET", path, alice).json() == {"avatar_url": "mxc://test.localhost/a"}


def test_custom_fields_stay_settable(server: RunningServer, alice: Session) -> None:
    path = f"/profile/{u(alice.user_id)}/m.tz"
    assert call(server, "PUT", path, alice, {"m.tz": "UTC"}).status == 200


def test_profile_lookups_need_a_token(server: RunningServer, alice: Session) -> None:
    for path in (f"/profile/{u(alice.user_id)}", f"/profile/{u(alice.user_id)}/displayname"):
        reply = call(server, "GET", path, None)
        assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")
        assert call(server, "GET", path, alice).status == 200


def test_profiles_of_users_sharing_no_room_are_hidden(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    for path in (f"/profile/{u(bob.user_id)}", f"/profile/{u(bob.user_id)}/displayname"):
        reply = call(server, "GET", path, alice)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


def test_capabilities_follow_the_switches(server: RunningServer, alice: Session) -> None:
    capabilities = call(server, "GET", "/capabilities", alice).json()["capabilities"]
    assert capabilities["m.set_displayname"] == {"enabled": False}
    assert capabilities["m.set_avatar_url"] == {"enabled": False}
    assert capabilities["m.3pid_changes"] == {"enabled": False}
    assert capabilities["m.room_versions"]["default"] == "11"
    assert capabilities["m.profile_fields"] == {
        "enabled": True,
        "disallowed": ["displayname", "avatar_url"],
    }


def test_filter_timeline_limit_follows_the_config(server: RunningServer, alice: Session) -> None:
    path = f"/user/{u(alice.user_id)}/filter"
    filter_id = call(server, "POST", path, alice, {"room": {"timeline": {"limit": 50}}}).json()[
        "filter_id"
    ]
    stored = call(server, "GET", f"{path}/{filter_id}", alice).json()
    assert stored == {"room": {"timeline": {"limit": 5}}}
