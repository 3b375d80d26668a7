"""Accounts over real HTTP on both engines: registration, login, tokens, user-interactive
auth, password change, deactivation and devices, as a client observes them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.config.loader import load_config
from ranvier.storage.schema import prepare_database
from ranvier.storage.ui_auth import UIAuthStore
from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    login,
    make_admin,
    register,
    register_user_command,
)

# long enough to run a few requests with, short enough to wait out in a test
ACCESS_TOKEN_LIFETIME_MS = 1500


server = module_server(
    allow_guest_access=True,
    refreshable_access_token_lifetime=ACCESS_TOKEN_LIFETIME_MS,
    password_config={"policy": {"enabled": True, "minimum_length": 8}},
    **REGISTRATION_CONFIG,
)


def post(
    server: RunningServer, path: str, body: dict[str, Any], session: Session | None = None
) -> Reply:
    if session is None:
        return request("POST", server.url + CLIENT + path, body)
    return authed(session, "POST", server.url + CLIENT + path, body)


def get(server: RunningServer, path: str, session: Session | None = None) -> Reply:
    if session is None:
        return request("GET", server.url + CLIENT + path)
    return authed(session, "GET", server.url + CLIENT + path)


def password_auth(user: str, password: str = DEFAULT_PASSWORD, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        **extra,
    }


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def whoami(server: RunningServer, session: Session) -> Reply:
    return get(server, "/account/whoami", session)


# -- registration --


def test_register_without_auth_offers_the_dummy_flow(server: RunningServer) -> None:
    reply = post(server, "/register", {"username": "flowcheck", "password": DEFAULT_PASSWORD})
    assert reply.status == 401
    body = reply.json()
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert body["completed"] == [] and body["params"] == {}
    assert isinstance(body["session"], str)
    assert "errcode" not in body

    # completing the session with only `auth` registers what the first request asked
    done = post(
        server, "/register", {"auth": {"type": "m.login.dummy", "session": body["session"]}}
    )
    assert done.status == 200, done.body
    assert done.json()["user_id"] == "@flowcheck:test.localhost"
    login(server.url, "flowcheck")


def test_register_returns_a_working_session(server: RunningServer) -> None:
    alice = register(server.url, "alice", initial_device_display_name="Alice's phone")
    assert alice.user_id == "@alice:test.localhost"
    reply = whoami(server, alice)
    assert reply.json() == {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "is_guest": False,
    }
    device = get(server, f"/devices/{alice.device_id}", alice).json()
    assert device["display_name"] == "Alice's phone"


def test_register_lowercases_and_keeps_a_chosen_device_id(server: RunningServer) -> None:
    session = register(server.url, "MixedCase", device_id="MYDEVICE")
    assert session.user_id == "@mixedcase:test.localhost"
    assert session.device_id == "MYDEVICE"


def test_register_taken_name_is_user_in_use(server: RunningServer) -> None:
    register(server.url, "taken")
    body = {"username": "taken", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
    assert_error(post(server, "/register", body), 400, "M_USER_IN_USE")
    # checked before any auth is asked for
    body.pop("auth")
    assert_error(post(server, "/register", body), 400, "M_USER_IN_USE")


@pytest.mark.parametrize(
    "username",
    ["has space", "émile", "semi;colon", "_reserved", "12345", "", "x" * 250],
)
def test_register_invalid_usernames(server: RunningServer, username: str) -> None:
    body = {"username": username, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
    assert_error(post(server, "/register", body), 400, "M_INVALID_USERNAME")


def test_register_weak_password(server: RunningServer) -> None:
    body = {"username": "weakling", "password": "short", "auth": {"type": "m.login.dummy"}}
    reply = post(server, "/register", body)
    assert_error(reply, 400, "M_WEAK_PASSWORD")
    assert "at least 8 characters" in reply.json()["error"]
    assert get(server, "/register/available?username=weakling").json() == {"available": True}


def test_register_missing_password(server: RunningServer) -> None:
    body = {"username": "nopassword", "auth": {"type": "m.login.dummy"}}
    assert_error(post(server, "/register", body), 400, "M_MISSING_PARAM")


def test_register_refuses_fields_of_the_wrong_type(server: RunningServer) -> None:
    dummy = {"type": "m.login.dummy"}
    body = {"username": 5, "password": DEFAULT_PASSWORD, "auth": dummy}
    assert_error(post(server, "/register", body), 400, "M_BAD_JSON")
    body = {"username": "typedinhibit", "password": DEFAULT_PASSWORD, "inhibit_login": "no"}
    assert_error(post(server, "/register", {**body, "auth": dummy}), 400, "M_BAD_JSON")
    # nothing was registered on the way
    assert get(server, "/register/available?username=typedinhibit").json() == {"available": True}
    assert_error(post(server, "/register", {"auth": "dummy"}), 400, "M_BAD_JSON")
    assert_error(post(server, "/register", {"auth": {"type": 5}}), 400, "M_BAD_JSON")
    assert_error(post(server, "/register?kind=robot", {}), 400, "M_INVALID_PARAM")


def test_register_unknown_auth_type(server: RunningServer) -> None:
    body = {"username": "oddauth", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.foo"}}
    assert_error(post(server, "/register", body), 400, "M_UNRECOGNIZED")


def test_register_inhibit_login(server: RunningServer) -> None:
    body = {
        "username": "quiet",
        "password": DEFAULT_PASSWORD,
        "inhibit_login": True,
        "auth": {"type": "m.login.dummy"},
    }
    reply = post(server, "/register", body)
    assert reply.status == 200
    assert reply.json()["user_id"] == "@quiet:test.localhost"
    assert "access_token" not in reply.json() and "device_id" not in reply.json()
    login(server.url, "quiet")


def test_register_guest(server: RunningServer) -> None:
    reply = request("POST", server.url + CLIENT + "/register?kind=guest", {})
    assert reply.status == 200
    body = reply.json()
    localpart = body["user_id"][1:].split(":")[0]
    assert localpart.isdigit()
    guest = Session(body["user_id"], body["access_token"], body["device_id"])
    assert whoami(server, guest).json()["is_guest"] is True
    # guests may not manage devices
    assert_error(get(server, "/devices", guest), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_register_unknown_kind(server: RunningServer) -> None:
    reply = request("POST", server.url + CLIENT + "/register?kind=robot", {})
    assert_error(reply, 400, "M_INVALID_PARAM")


def test_register_with_refresh_token(server: RunningServer) -> None:
    body = {
        "username": "refresher",
        "password": DEFAULT_PASSWORD,
        "refresh_token": True,
        "auth": {"type": "m.login.dummy"},
    }
    reply = post(server, "/register", body)
    assert reply.status == 200
    assert isinstance(reply.json()["refresh_token"], str)
    assert 0 < reply.json()["expires_in_ms"] <= ACCESS_TOKEN_LIFETIME_MS


def test_register_available(server: RunningServer) -> None:
    register(server.url, "occupied")
    assert get(server, "/register/available?username=free").json() == {"available": True}
    assert_error(get(server, "/register/available?username=occupied"), 400, "M_USER_IN_USE")
    assert_error(get(server, "/register/available?username=OCCUPIED"), 400, "M_INVALID_USERNAME")
    assert_error(get(server, "/register/available?username=_bot"), 400, "M_INVALID_USERNAME")
    assert_error(get(server, "/register/available"), 400, "M_MISSING_PARAM")


# -- login --


def test_login_flows(server: RunningServer) -> None:
    flows = get(server, "/login").json()["flows"]
    assert {"type": "m.login.password"} in flows
    assert {"type": "m.login.token"} in flows


def test_login_with_identifier_legacy_user_and_full_user_id(server: RunningServer) -> None:
    bob = register(server.url, "bob")
    by_identifier = login(server.url, "bob")
    assert by_identifier.user_id == bob.user_id
    assert by_identifier.device_id != bob.device_id
    legacy = post(
        server,
        "/login",
        {"type": "m.login.password", "user": "@bob:test.localhost", "password": DEFAULT_PASSWORD},
    )
    assert legacy.status == 200
    assert legacy.json()["user_id"] == bob.user_id
    assert legacy.json()["home_server"] == "test.localhost"
    devices = get(server, "/devices", bob).json()["devices"]
    assert len(devices) == 3


def test_login_reusing_a_device_id_keeps_one_device(server: RunningServer) -> None:
    register(server.url, "carol", device_id="CAROLPHONE")
    again = login(server.url, "carol", device_id="CAROLPHONE")
    assert again.device_id == "CAROLPHONE"
    assert [d["device_id"] for d in get(server, "/devices", again).json()["devices"]] == [
        "CAROLPHONE"
    ]


def test_login_wrong_password_and_unknown_user_look_the_same(server: RunningServer) -> None:
    register(server.url, "dave")
    wrong = post(server, "/login", password_auth("dave", "not the password"))
    unknown = post(server, "/login", password_auth("nobody-here"))
    remote = post(server, "/login", password_auth("@dave:elsewhere.example"))
    for reply in (wrong, unknown, remote):
        assert_error(reply, 403, "M_FORBIDDEN")
        assert reply.json()["error"] == "Invalid username or password"


def test_login_bad_requests(server: RunningServer) -> None:
    assert_error(post(server, "/login", {"type": "m.login.magic"}), 400, "M_UNKNOWN")
    thirdparty = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"},
        "password": "x",
    }
    # an address no account has fails as a wrong password does
    assert_error(post(server, "/login", thirdparty), 403, "M_FORBIDDEN")
    thirdparty["identifier"] = {"type": "m.id.thirdparty", "medium": "email"}
    assert_error(post(server, "/login", thirdparty), 400, "M_MISSING_PARAM")
    assert_error(post(server, "/login", {"password": "x"}), 400, "M_MISSING_PARAM")
    assert_error(post(server, "/login", {"type": "m.login.token"}), 400, "M_MISSING_PARAM")
    bad_token = {"type": "m.login.token", "token": "made-up"}
    assert_error(post(server, "/login", bad_token), 403, "M_FORBIDDEN")


def test_login_refuses_fields_of_the_wrong_type(server: RunningServer) -> None:
    register(server.url, "typedlogin")
    good = {"type": "m.login.password", **password_auth("typedlogin")}
    cases = [
        ({**good, "password": 12345678}, "M_BAD_JSON"),
        ({**good, "identifier": "typedlogin"}, "M_BAD_JSON"),
        ({**good, "identifier": {"user": "typedlogin"}}, "M_MISSING_PARAM"),
        ({**good, "identifier": {"type": "m.id.user", "user": ["typedlogin"]}}, "M_BAD_JSON"),
        ({**good, "identifier": {"type": "m.id.user"}}, "M_MISSING_PARAM"),
        ({**good, "refresh_token": "yes"}, "M_BAD_JSON"),
        ({**good, "device_id": 7}, "M_BAD_JSON"),
        ({"type": 1, "token": "x"}, "M_BAD_JSON"),
        ({"type": "m.login.token", "token": 7}, "M_BAD_JSON"),
    ]
    for body, errcode in cases:
        reply = post(server, "/login", body)
        assert_error(reply, 400, errcode)
        assert "access_token" not in reply.json()
    # the legacy top-level user still logs in
    legacy = {"type": "m.login.password", "user": "typedlogin", "password": DEFAULT_PASSWORD}
    assert post(server, "/login", legacy).status == 200


def test_uia_password_of_the_wrong_type_is_answered_in_the_session(
    server: RunningServer,
) -> None:
    session = register(server.url, "typeduia")
    url = "/delete_devices"
    first = post(server, url, {"devices": [session.device_id]}, session)
    assert first.status == 401
    auth = password_auth("typeduia", session=first.json()["session"])
    reply = post(
        server, url, {"devices": [session.device_id], "auth": {**auth, "password": 5}}, session
    )
    assert_error(reply, 401, "M_BAD_JSON")
    assert reply.json()["session"] == first.json()["session"]
    assert reply.json()["completed"] == []
    assert whoami(server, session).status == 200
    # the same session then completes with the right password
    reply = post(server, url, {"devices": [session.device_id], "auth": auth}, session)
    assert reply.status == 200
    assert_error(whoami(server, session), 401, "M_UNKNOWN_TOKEN")


# -- tokens --


def test_missing_and_unknown_tokens(server: RunningServer) -> None:
    assert_error(get(server, "/account/whoami"), 401, "M_MISSING_TOKEN")
    bogus = Session("@x:test.localhost", "not-a-token", "X")
    reply = whoami(server, bogus)
    assert_error(reply, 401, "M_UNKNOWN_TOKEN")
    assert "soft_logout" not in reply.json()
    # the deprecated query-string form still names the user (tests/integration/
    # test_access_token_param.py covers it in full); an unknown one is refused the same way
    alice_like = register(server.url, "querytoken")
    url = server.url + CLIENT + "/account/whoami?access_token="
    assert request("GET", url + alice_like.access_token).json()["user_id"] == alice_like.user_id
    assert_error(request("GET", url + "not-a-token"), 401, "M_UNKNOWN_TOKEN")


def test_expired_access_token_is_a_soft_logout_and_refresh_works(server: RunningServer) -> None:
    register(server.url, "erin")
    reply = post(server, "/login", password_auth("erin", refresh_token=True))
    assert reply.status == 200
    body = reply.json()
    session = Session(body["user_id"], body["access_token"], body["device_id"])
    first_refresh = body["refresh_token"]
    assert whoami(server, session).status == 200

    time.sleep(ACCESS_TOKEN_LIFETIME_MS / 1000 + 0.2)
    expired = whoami(server, session)
    assert_error(expired, 401, "M_UNKNOWN_TOKEN")
    assert expired.json()["soft_logout"] is True

    refreshed = post(server, "/refresh", {"refresh_token": first_refresh})
    assert refreshed.status == 200, refreshed.body
    new = refreshed.json()
    assert new["refresh_token"] != first_refresh
    assert 0 < new["expires_in_ms"] <= ACCESS_TOKEN_LIFETIME_MS
    renewed = Session(session.user_id, new["access_token"], session.device_id)
    assert whoami(server, renewed).json()["device_id"] == session.device_id

    # using the new access token revokes the old refresh token
    assert_error(post(server, "/refresh", {"refresh_token": first_refresh}), 401, "M_UNKNOWN_TOKEN")
    assert post(server, "/refresh", {"refresh_token": new["refresh_token"]}).status == 200


def test_refresh_errors(server: RunningServer) -> None:
    reply = post(server, "/refresh", {"refresh_token": "made-up"})
    assert_error(reply, 401, "M_UNKNOWN_TOKEN")
    assert_error(post(server, "/refresh", {}), 400, "M_MISSING_PARAM")


def test_logout_ends_the_session_and_its_device(server: RunningServer) -> None:
    register(server.url, "frank")
    phone = login(server.url, "frank")
    laptop = login(server.url, "frank")
    assert post(server, "/logout", {}, phone).status == 200
    assert_error(whoami(server, phone), 401, "M_UNKNOWN_TOKEN")
    device_ids = [d["device_id"] for d in get(server, "/devices", laptop).json()["devices"]]
    assert phone.device_id not in device_ids and laptop.device_id in device_ids
    assert_error(post(server, "/logout", {}), 401, "M_MISSING_TOKEN")


def test_logout_all(server: RunningServer) -> None:
    first = register(server.url, "grace")
    second = login(server.url, "grace")
    assert post(server, "/logout/all", {}, first).status == 200
    for session in (first, second):
        assert_error(whoami(server, session), 401, "M_UNKNOWN_TOKEN")
    assert get(server, "/devices", login(server.url, "grace")).json()["devices"].__len__() == 1


# -- user-interactive auth, password, deactivation --


def test_password_change_logs_out_other_devices(server: RunningServer) -> None:
    main = register(server.url, "heidi")
    other = login(server.url, "heidi")
    body: dict[str, Any] = {"new_password": "a brand new password"}
    challenge = post(server, "/account/password", body, main)
    assert challenge.status == 401
    assert challenge.json()["flows"] == [{"stages": ["m.login.password"]}]
    session_id = challenge.json()["session"]

    wrong = post(
        server,
        "/account/password",
        {**body, "auth": password_auth("heidi", "wrong password", session=session_id)},
        main,
    )
    assert wrong.status == 401
    assert wrong.json()["errcode"] == "M_FORBIDDEN"
    assert wrong.json()["session"] == session_id

    done = post(
        server,
        "/account/password",
        {**body, "auth": password_auth("heidi", session=session_id)},
        main,
    )
    assert done.status == 200, done.body
    assert whoami(server, main).status == 200
    assert_error(whoami(server, other), 401, "M_UNKNOWN_TOKEN")
    assert_error(post(server, "/login", password_auth("heidi")), 403, "M_FORBIDDEN")
    login(server.url, "heidi", "a brand new password")


def test_a_password_change_session_does_not_store_the_new_password(
    server: RunningServer,
) -> None:
    vera = register(server.url, "vera")
    body = {"new_password": "vera's secret new password", "logout_devices": False}
    challenge = post(server, "/account/password", body, vera)
    assert challenge.status == 401
    session_id = challenge.json()["session"]

    stored = stored_auth_session(server.config_path, session_id)
    assert stored == {"logout_devices": False}

    done = {**body, "auth": password_auth("vera", session=session_id)}
    assert post(server, "/account/password", done, vera).status == 200
    login(server.url, "vera", "vera's secret new password")


def stored_auth_session(config_path: Path, session_id: str) -> dict[str, Any]:
    """The body an auth session keeps, as an admin reading the database would see it."""

    async def read() -> dict[str, Any]:
        database = await prepare_database(load_config(config_path))
        try:
            session = await UIAuthStore(database).get_session(session_id)
        finally:
            await database.close()
        assert session is not None
        return session.clientdict

    return asyncio.run(read())


def test_password_change_can_keep_other_devices(server: RunningServer) -> None:
    main = register(server.url, "ivan")
    other = login(server.url, "ivan")
    body = {
        "new_password": "another fine password",
        "logout_devices": False,
        "auth": password_auth("ivan"),
    }
    assert post(server, "/account/password", body, main).status == 200
    assert whoami(server, other).status == 200


def test_password_change_errors(server: RunningServer) -> None:
    judy = register(server.url, "judy")
    register(server.url, "mallory")
    weak = {"new_password": "short", "auth": password_auth("judy")}
    assert_error(post(server, "/account/password", weak, judy), 400, "M_WEAK_PASSWORD")
    assert_error(post(server, "/account/password", {}, judy), 400, "M_MISSING_PARAM")
    assert_error(
        post(server, "/account/password", {"new_password": "x" * 10}), 401, "M_MISSING_TOKEN"
    )
    # a new password that is not a string changes nothing
    not_text = {"new_password": 12345678, "auth": password_auth("judy")}
    assert_error(post(server, "/account/password", not_text, judy), 400, "M_BAD_JSON")
    assert_error(
        post(server, "/account/password", {**weak, "logout_devices": "no"}, judy), 400, "M_BAD_JSON"
    )
    assert whoami(server, judy).status == 200
    assert login(server.url, "judy", DEFAULT_PASSWORD).user_id == judy.user_id
    # another user's password does not authorise changing judy's
    other = {"new_password": "judy's new password", "auth": password_auth("mallory")}
    assert_error(post(server, "/account/password", other, judy), 403, "M_FORBIDDEN")


def test_auth_session_is_bound_to_its_request(server: RunningServer) -> None:
    kim = register(server.url, "kim")
    started = post(server, "/delete_devices", {"devices": [kim.device_id]}, kim)
    session_id = started.json()["session"]
    reuse = {"new_password": "kims new password", "auth": password_auth("kim", session=session_id)}
    assert_error(post(server, "/account/password", reuse, kim), 403, "M_FORBIDDEN")
    unknown = {"new_password": "kims new password", "auth": password_auth("kim", session="nope")}
    assert_error(post(server, "/account/password", unknown, kim), 400, "M_UNKNOWN")


def test_deactivate(server: RunningServer) -> None:
    leo = register(server.url, "leo")
    challenge = post(server, "/account/deactivate", {}, leo)
    assert challenge.status == 401
    assert challenge.json()["flows"] == [{"stages": ["m.login.password"]}]
    done = post(server, "/account/deactivate", {"erase": True, "auth": password_auth("leo")}, leo)
    assert done.status == 200, done.body
    assert done.json() == {"id_server_unbind_result": "no-support"}
    assert_error(whoami(server, leo), 401, "M_UNKNOWN_TOKEN")
    assert_error(post(server, "/login", password_auth("leo")), 403, "M_USER_DEACTIVATED")
    # the user ID stays taken
    assert_error(get(server, "/register/available?username=leo"), 400, "M_USER_IN_USE")


def test_3pids_are_empty(server: RunningServer) -> None:
    mia = register(server.url, "mia")
    assert get(server, "/account/3pid", mia).json() == {"threepids": []}
    assert_error(get(server, "/account/3pid"), 401, "M_MISSING_TOKEN")


# -- devices --


def test_devices_list_get_rename(server: RunningServer) -> None:
    ned = register(server.url, "ned", initial_device_display_name="first")
    devices = get(server, "/devices", ned).json()["devices"]
    assert [d["device_id"] for d in devices] == [ned.device_id]
    assert devices[0]["display_name"] == "first"
    assert devices[0]["last_seen_ip"] == "127.0.0.1"
    assert isinstance(devices[0]["last_seen_ts"], int)

    url = server.url + CLIENT + f"/devices/{ned.device_id}"
    assert authed(ned, "PUT", url, {"display_name": "renamed"}).status == 200
    assert authed(ned, "GET", url).json()["display_name"] == "renamed"
    assert authed(ned, "PUT", url, {}).status == 200
    assert authed(ned, "GET", url).json()["display_name"] == "renamed"

    missing = server.url + CLIENT + "/devices/NOSUCHDEVICE"
    assert_error(authed(ned, "GET", missing), 404, "M_NOT_FOUND")
    assert_error(authed(ned, "PUT", missing, {"display_name": "x"}), 404, "M_NOT_FOUND")
    assert_error(authed(ned, "DELETE", missing, {}), 404, "M_NOT_FOUND")
    assert_error(authed(ned, "PUT", url, {"display_name": 5}), 400, "M_BAD_JSON")
    assert_error(request("GET", server.url + CLIENT + "/devices"), 401, "M_MISSING_TOKEN")


def test_devices_of_others_are_invisible(server: RunningServer) -> None:
    olga = register(server.url, "olga")
    pete = register(server.url, "pete")
    url = server.url + CLIENT + f"/devices/{olga.device_id}"
    assert_error(authed(pete, "GET", url), 404, "M_NOT_FOUND")


def test_delete_device_needs_auth(server: RunningServer) -> None:
    quinn = register(server.url, "quinn")
    spare = login(server.url, "quinn")
    url = server.url + CLIENT + f"/devices/{spare.device_id}"
    challenge = authed(quinn, "DELETE", url)
    assert challenge.status == 401
    assert challenge.json()["flows"] == [{"stages": ["m.login.password"]}]
    assert authed(spare, "GET", server.url + CLIENT + "/account/whoami").status == 200
    auth = password_auth("quinn", session=challenge.json()["session"])
    assert authed(quinn, "DELETE", url, {"auth": auth}).status == 200
    assert_error(whoami(server, spare), 401, "M_UNKNOWN_TOKEN")
    assert_error(authed(quinn, "GET", url), 404, "M_NOT_FOUND")


def test_delete_devices(server: RunningServer) -> None:
    rita = register(server.url, "rita")
    spares = [login(server.url, "rita") for _ in range(2)]
    body: dict[str, Any] = {"devices": [s.device_id for s in spares]}
    assert post(server, "/delete_devices", body, rita).status == 401
    done = post(server, "/delete_devices", {**body, "auth": password_auth("rita")}, rita)
    assert done.status == 200
    for spare in spares:
        assert_error(whoami(server, spare), 401, "M_UNKNOWN_TOKEN")
    assert [d["device_id"] for d in get(server, "/devices", rita).json()["devices"]] == [
        rita.device_id
    ]
    assert_error(post(server, "/delete_devices", {}, rita), 400, "M_MISSING_PARAM")
    assert_error(post(server, "/delete_devices", {"devices": "all"}, rita), 400, "M_BAD_JSON")


# -- the command line --


def test_register_user_command(server: RunningServer) -> None:
    done = register_user_command(server.config_path, "cliuser", "cli password 1", admin=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "@cliuser:test.localhost"
    again = register_user_command(server.config_path, "cliuser", "cli password 1")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    bad = register_user_command(server.config_path, "Bad Name", "cli password 1")
    assert bad.returncode == 1
    assert "can only contain" in bad.stderr
    session = login(server.url, "cliuser", "cli password 1")
    status = authed(session, "GET", server.url + "/_synapse/admin/v1/background_updates/status")
    assert status.status == 200


def test_register_user_command_without_a_running_server(
    tmp_path: Path, module_database: dict[str, Any]
) -> None:
    config = write_test_config(tmp_path, module_database, free_port())
    done = register_user_command(config, "offline", "offline password")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "@offline:test.localhost"


# -- registration switched off --


def test_registration_disabled(tmp_path: Path, module_database: dict[str, Any]) -> None:
    port = free_port()
    running = start_server(write_test_config(tmp_path, module_database, port), port)
    try:
        body = {"username": "nope", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
        reply = request("POST", running.url + CLIENT + "/register", body)
        assert_error(reply, 403, "M_FORBIDDEN")
        reply = request("GET", running.url + CLIENT + "/register/available?username=nope")
        assert_error(reply, 403, "M_FORBIDDEN")
        guest = request("POST", running.url + CLIENT + "/register?kind=guest", {})
        assert_error(guest, 403, "M_FORBIDDEN")
    finally:
        assert running.stop() == 0, running.log()


# -- changes an admin makes take effect on the next request --


def test_demoted_admin_loses_admin_access_at_once(server: RunningServer) -> None:
    root = make_admin(server.config_path, "root")
    deputy = make_admin(server.config_path, "deputy")
    status_url = server.url + "/_synapse/admin/v1/background_updates/status"
    assert authed(deputy, "GET", status_url).status == 200
    demote = server.url + f"/_synapse/admin/v2/users/{quote(deputy.user_id)}"
    assert authed(root, "PUT", demote, {"admin": False}).status == 200
    assert_error(authed(deputy, "GET", status_url), 403, "M_FORBIDDEN")


def test_locked_account_is_soft_logged_out_but_may_log_out(server: RunningServer) -> None:
    root = make_admin(server.config_path, "locksmith")
    sam = register(server.url, "sam")
    assert whoami(server, sam).status == 200
    lock = server.url + f"/_synapse/admin/v2/users/{quote(sam.user_id)}"
    assert authed(root, "PUT", lock, {"locked": True}).status == 200
    reply = whoami(server, sam)
    assert_error(reply, 401, "M_USER_LOCKED")
    assert reply.json()["soft_logout"] is True
    assert post(server, "/logout", {}, sam).status == 200
