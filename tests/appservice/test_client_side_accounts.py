"""Accounts and aliases through a service (spec: application-service-api "Server admin style
permissions"): it registers and logs in as users of its namespace with its as_token alone,
and M_EXCLUSIVE keeps everyone else out of the names and aliases a service holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.appservice.client_side import (
    SERVER_NAME,
    as_request,
    irc_service,
    register_puppet,
    services_server,
    user_id,
)
from tests.appservice.fake_appservice import FakeAppService
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, make_admin

APPSERVICE_TYPE = "m.login.application_service"


@pytest.fixture(scope="module")
def irc() -> Iterator[FakeAppService]:
    with irc_service() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
    irc: FakeAppService,
) -> Iterator[RunningServer]:
    yield from services_server(tmp_path_factory, module_database, [appservice, irc])


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def whoami(server: RunningServer, access_token: str) -> Reply:
    return request(
        "GET",
        server.url + CLIENT + "/account/whoami",
        headers={"Authorization": f"Bearer {access_token}"},
    )


# -- registration --


def test_a_service_registers_a_user_of_its_namespace_who_can_use_the_session(
    server: RunningServer, appservice: FakeAppService
) -> None:
    reply = register_puppet(server, appservice, "_fake_alice", device_id="BRIDGED")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["user_id"] == user_id("_fake_alice")
    assert body["device_id"] == "BRIDGED"
    me = whoami(server, body["access_token"])
    assert me.json()["user_id"] == user_id("_fake_alice")
    admin = make_admin(server.config_path, "accounts_admin")
    shown = authed(
        admin, "GET", server.url + f"/_synapse/admin/v2/users/{quote(user_id('_fake_alice'))}"
    )
    assert shown.json()["appservice_id"] == appservice.id
    # the sender was made at start-up, as the service's own
    sender = authed(
        admin, "GET", server.url + f"/_synapse/admin/v2/users/{quote(user_id('_fake_bot'))}"
    )
    assert sender.json()["appservice_id"] == appservice.id


def test_inhibit_login_registers_without_a_session(
    server: RunningServer, appservice: FakeAppService
) -> None:
    reply = register_puppet(server, appservice, "_fake_quiet", inhibit_login=True)
    assert reply.status == 200, reply.body
    assert reply.json() == {"user_id": user_id("_fake_quiet"), "home_server": SERVER_NAME}


def test_a_service_may_not_register_outside_its_namespace_or_twice(
    server: RunningServer, appservice: FakeAppService, irc: FakeAppService
) -> None:
    # another service's exclusive namespace, and nobody's
    assert_error(register_puppet(server, appservice, "irc_someone"), 400, "M_EXCLUSIVE")
    assert_error(register_puppet(server, appservice, "plainname"), 400, "M_EXCLUSIVE")
    assert register_puppet(server, irc, "irc_twice").status == 200
    assert_error(register_puppet(server, irc, "irc_twice"), 400, "M_USER_IN_USE")
    assert_error(
        as_request(server, irc, "POST", "/register", {"type": APPSERVICE_TYPE}),
        400,
        "M_MISSING_PARAM",
    )


def test_application_service_registration_needs_a_valid_as_token(
    server: RunningServer, alice: Session
) -> None:
    body = {"type": APPSERVICE_TYPE, "username": "_fake_tokenless"}
    url = server.url + CLIENT + "/register"
    assert_error(request("POST", url, body), 401, "M_MISSING_TOKEN")
    assert_error(request("POST", url, body, alice.headers), 401, "M_UNKNOWN_TOKEN")
    assert_error(
        request("POST", url, body, {"Authorization": "Bearer nonsense"}), 401, "M_UNKNOWN_TOKEN"
    )


def test_a_service_registering_without_its_type_is_refused_as_synapse_does(
    server: RunningServer, appservice: FakeAppService
) -> None:
    reply = as_request(
        server,
        appservice,
        "POST",
        "/register",
        {"username": "_fake_typeless", "password": "x" * 12, "auth": {"type": "m.login.dummy"}},
    )
    assert_error(reply, 400, "M_UNKNOWN")


# -- M_EXCLUSIVE for ordinary users --


def test_ordinary_users_cannot_register_a_name_a_service_holds(server: RunningServer) -> None:
    def attempt(localpart: str) -> Reply:
        return request(
            "POST",
            server.url + CLIENT + "/register",
            {"username": localpart, "password": "x" * 12, "auth": {"type": "m.login.dummy"}},
        )

    def available(localpart: str) -> Reply:
        return request(
            "GET", server.url + CLIENT + f"/register/available?username={quote(localpart)}"
        )

    for reserved in ("irc_bob", "irc_bot"):  # in the namespace; the service's sender
        assert_error(attempt(reserved), 400, "M_EXCLUSIVE")
        assert_error(available(reserved), 400, "M_EXCLUSIVE")
    # as Synapse, the leading underscore is refused first
    assert_error(available("_fake_carol"), 400, "M_INVALID_USERNAME")
    assert available("ircbob").json() == {"available": True}
    assert attempt("ircbob").status == 200


# -- login --


def test_login_flows_offer_application_service_login(server: RunningServer) -> None:
    flows = request("GET", server.url + CLIENT + "/login").json()["flows"]
    assert {"type": APPSERVICE_TYPE} in flows


def test_a_service_logs_in_as_its_users(server: RunningServer, appservice: FakeAppService) -> None:
    assert register_puppet(server, appservice, "_fake_dave", inhibit_login=True).status == 200
    by_identifier = as_request(
        server,
        appservice,
        "POST",
        "/login",
        {"type": APPSERVICE_TYPE, "identifier": {"type": "m.id.user", "user": "_fake_dave"}},
    )
    assert by_identifier.status == 200, by_identifier.body
    assert by_identifier.json()["user_id"] == user_id("_fake_dave")
    assert whoami(server, by_identifier.json()["access_token"]).json()["user_id"] == user_id(
        "_fake_dave"
    )
    by_user = as_request(
        server,
        appservice,
        "POST",
        "/login",
        {"type": APPSERVICE_TYPE, "user": user_id("_fake_dave")},
    )
    assert by_user.status == 200, by_user.body
    assert by_user.json()["device_id"] != by_identifier.json()["device_id"]


def test_application_service_login_refusals(
    server: RunningServer, appservice: FakeAppService, irc: FakeAppService, alice: Session
) -> None:
    def log_in(user: str, headers: dict[str, str] | None = None) -> Reply:
        body = {"type": APPSERVICE_TYPE, "identifier": {"type": "m.id.user", "user": user}}
        if headers is None:
            return as_request(server, appservice, "POST", "/login", body)
        return request("POST", server.url + CLIENT + "/login", body, headers)

    assert register_puppet(server, irc, "irc_erin", inhibit_login=True).status == 200
    assert_error(log_in("irc_erin"), 400, "M_EXCLUSIVE")
    assert_error(log_in(alice.user_id), 400, "M_EXCLUSIVE")
    never = log_in("_fake_never_registered")
    assert_error(never, 403, "M_FORBIDDEN")
    assert "has not registered" in never.json()["error"]
    assert_error(log_in("_fake_dave", {}), 401, "M_MISSING_TOKEN")
    assert_error(log_in("_fake_dave", alice.headers), 401, "M_UNKNOWN_TOKEN")


# -- aliases --


def put_alias(server: RunningServer, headers: dict[str, str], alias: str, room_id: str) -> Reply:
    url = server.url + CLIENT + f"/directory/room/{quote(alias)}"
    return request("PUT", url, {"room_id": room_id}, headers)


def delete_alias(server: RunningServer, headers: dict[str, str], alias: str) -> Reply:
    return request("DELETE", server.url + CLIENT + f"/directory/room/{quote(alias)}", None, headers)


def test_aliases_in_a_services_exclusive_namespace_are_its_own(
    server: RunningServer, appservice: FakeAppService, irc: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    irc_headers = {"Authorization": f"Bearer {irc.as_token}"}
    fake_headers = {"Authorization": f"Bearer {appservice.as_token}"}
    irc_alias = f"#irc_chat:{SERVER_NAME}"
    assert_error(put_alias(server, alice.headers, irc_alias, room_id), 400, "M_EXCLUSIVE")
    assert_error(
        put_alias(server, alice.headers, f"#_fake_x:{SERVER_NAME}", room_id), 400, "M_EXCLUSIVE"
    )
    assert put_alias(server, alice.headers, f"#alices:{SERVER_NAME}", room_id).status == 200
    # a service needs no membership in its namespace, and has nothing outside it
    assert put_alias(server, irc_headers, irc_alias, room_id).status == 200
    assert_error(
        put_alias(server, irc_headers, f"#_fake_y:{SERVER_NAME}", room_id), 400, "M_EXCLUSIVE"
    )
    assert_error(
        put_alias(server, irc_headers, f"#other:{SERVER_NAME}", room_id), 400, "M_EXCLUSIVE"
    )
    # the room's creator could delete another's alias of it, but not one a service holds
    assert_error(delete_alias(server, alice.headers, irc_alias), 400, "M_EXCLUSIVE")
    assert_error(delete_alias(server, fake_headers, irc_alias), 400, "M_EXCLUSIVE")
    assert delete_alias(server, irc_headers, irc_alias).status == 200
    gone = request("GET", server.url + CLIENT + f"/directory/room/{quote(irc_alias)}")
    assert_error(gone, 404, "M_NOT_FOUND")


def test_without_track_appservice_user_ips_a_services_requests_leave_no_trace(
    server: RunningServer, appservice: FakeAppService
) -> None:
    puppet = register_puppet(server, appservice, "_fake_untracked", device_id="QUIET")
    assert puppet.status == 200, puppet.body
    device = as_request(
        server,
        appservice,
        "GET",
        "/devices/QUIET",
        user_id=user_id("_fake_untracked"),
        device_id="QUIET",
    )
    assert device.status == 200, device.body
    assert device.json().get("last_seen_ip") is None


def test_create_room_may_not_take_an_alias_a_service_holds(
    server: RunningServer, appservice: FakeAppService, irc: FakeAppService, alice: Session
) -> None:
    def create(headers: dict[str, str], alias_name: str) -> Reply:
        body = {"room_alias_name": alias_name}
        return request("POST", server.url + CLIENT + "/createRoom", body, headers)

    irc_headers = {"Authorization": f"Bearer {irc.as_token}"}
    fake_headers = {"Authorization": f"Bearer {appservice.as_token}"}
    assert_error(create(alice.headers, "irc_lobby"), 400, "M_EXCLUSIVE")
    assert_error(create(fake_headers, "irc_lobby"), 400, "M_EXCLUSIVE")
    made = create(irc_headers, "irc_lobby")
    assert made.status == 200, made.body
    found = request(
        "GET", server.url + CLIENT + f"/directory/room/{quote('#irc_lobby:' + SERVER_NAME)}"
    )
    assert found.json()["room_id"] == made.json()["room_id"]
