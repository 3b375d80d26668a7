"""The user admin API and shared-secret registration over real HTTP on both engines, as an
admin tool (synadm, register_new_matrix_user) sees them."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, authed, login, make_admin

SECRET = "a shared secret"
ADMIN = "/_synapse/admin"
HS = "test.localhost"


server = module_server(
    registration_shared_secret=SECRET,
    # admin-created accounts skip the policy; a client changing its password would not
    password_config={"policy": {"enabled": True, "minimum_length": 30}},
)


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


def uid(localpart: str) -> str:
    return f"@{localpart}:{HS}"


def call(
    server: RunningServer, who: Session | None, method: str, path: str, body: Any = None
) -> Reply:
    if who is None:
        return request(method, server.url + path, body)
    return authed(who, method, server.url + path, body)


def user_path(user_id: str) -> str:
    return f"{ADMIN}/v2/users/{quote(user_id)}"


def create_user(server: RunningServer, admin: Session, localpart: str, **body: Any) -> Reply:
    body.setdefault("password", DEFAULT_PASSWORD)
    reply = call(server, admin, "PUT", user_path(uid(localpart)), body)
    assert reply.status == 201, reply.body
    return reply


# -- shared-secret registration --


def tool_mac(
    nonce: str, user: str, password: str, admin: bool, user_type: str | None = None
) -> str:
    """As register_new_matrix_user computes it."""
    mac = hmac.new(key=SECRET.encode("utf8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf8"))
    mac.update(b"\x00")
    mac.update(user.encode("utf8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode("utf8"))
    return mac.hexdigest()


def nonce(server: RunningServer) -> str:
    reply = request("GET", server.url + ADMIN + "/v1/register")
    assert reply.status == 200
    value: str = reply.json()["nonce"]
    return value


def shared_secret_register(
    server: RunningServer,
    user: str,
    admin: bool = False,
    user_type: str | None = None,
    **extra: Any,
) -> Reply:
    n = nonce(server)
    body = {
        "nonce": n,
        "username": user,
        "password": DEFAULT_PASSWORD,
        "admin": admin,
        "mac": tool_mac(n, user, DEFAULT_PASSWORD, admin, user_type),
        **extra,
    }
    if user_type is not None:
        body["user_type"] = user_type
    return request("POST", server.url + ADMIN + "/v1/register", body)


def test_shared_secret_registration_logs_the_new_admin_in(
    server: RunningServer, admin: Session
) -> None:
    reply = shared_secret_register(server, "bootstrap", admin=True, displayname="Boot Strap")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["user_id"] == uid("bootstrap")
    assert body["home_server"] == HS
    assert body["device_id"]
    session = Session(body["user_id"], body["access_token"], body["device_id"])
    whoami = authed(session, "GET", server.url + CLIENT + "/account/whoami")
    assert whoami.json()["user_id"] == uid("bootstrap")
    user = call(server, admin, "GET", user_path(uid("bootstrap"))).json()
    assert (user["admin"], user["displayname"]) == (True, "Boot Strap")
    # an admin, so the admin API answers it
    assert call(server, session, "GET", ADMIN + "/v2/users").status == 200


def test_shared_secret_registration_with_user_type_and_upper_case(
    server: RunningServer, admin: Session
) -> None:
    reply = shared_secret_register(server, "Botty", user_type="bot")
    assert reply.status == 200, reply.body
    assert reply.json()["user_id"] == uid("botty")
    user = call(server, admin, "GET", user_path(uid("botty"))).json()
    assert (user["admin"], user["user_type"], user["displayname"]) == (False, "bot", "botty")


def test_shared_secret_nonce_is_single_use(server: RunningServer) -> None:
    n = nonce(server)
    body = {
        "nonce": n,
        "username": "once",
        "password": DEFAULT_PASSWORD,
        "mac": tool_mac(n, "once", DEFAULT_PASSWORD, False),
    }
    assert request("POST", server.url + ADMIN + "/v1/register", body).status == 200
    body["username"] = "twice"
    body["mac"] = tool_mac(n, "twice", DEFAULT_PASSWORD, False)
    reply = request("POST", server.url + ADMIN + "/v1/register", body)
    assert (reply.status, reply.json()["error"]) == (400, "unrecognised nonce")


def test_shared_secret_errors(server: RunningServer) -> None:
    url = server.url + ADMIN + "/v1/register"
    n = nonce(server)
    # a wrong MAC (here: claiming admin with a MAC for notadmin) is 403, and uses the nonce up
    body = {
        "nonce": n,
        "username": "mallory",
        "password": DEFAULT_PASSWORD,
        "admin": True,
        "mac": tool_mac(n, "mallory", DEFAULT_PASSWORD, False),
    }
    reply = request("POST", url, body)
    assert (reply.status, reply.errcode, reply.json()["error"]) == (
        403,
        "M_FORBIDDEN",
        "HMAC incorrect",
    )
    assert request("POST", url, body).json()["error"] == "unrecognised nonce"
    for missing in ("nonce", "username", "password", "mac"):
        partial = {"nonce": nonce(server), "username": "x", "password": "y", "mac": "z"}
        del partial[missing]
        reply = request("POST", url, partial)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), missing
    reply = shared_secret_register(server, "bad name!")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_USERNAME")
    reply = shared_secret_register(server, "typed", user_type="wizard")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    shared_secret_register(server, "taken")
    reply = shared_secret_register(server, "taken")
    assert (reply.status, reply.errcode) == (400, "M_USER_IN_USE")


# -- query, create, modify --


def test_create_then_query(server: RunningServer, admin: Session) -> None:
    reply = create_user(
        server,
        admin,
        "alice",
        displayname="Alice",
        avatar_url="mxc://test.localhost/alice",
        user_type="support",
        # shorter than the policy's minimum: the admin decides
        password="short",
    )
    created = reply.json()
    assert created["name"] == uid("alice")
    assert created["displayname"] == "Alice"
    assert created["avatar_url"] == "mxc://test.localhost/alice"
    assert (created["admin"], created["deactivated"], created["user_type"]) == (
        False,
        False,
        "support",
    )
    assert created["threepids"] == [] and created["external_ids"] == []
    # seconds, as Synapse answers this endpoint
    assert 1_600_000_000 < created["creation_ts"] < 10_000_000_000
    assert call(server, admin, "GET", user_path(uid("alice"))).json() == created
    session = login(server.url, "alice", "short")
    profile = call(server, session, "GET", CLIENT + "/profile/" + quote(uid("alice")))
    assert profile.json() == {"displayname": "Alice", "avatar_url": "mxc://test.localhost/alice"}


def test_created_user_gets_the_localpart_as_display_name(
    server: RunningServer, admin: Session
) -> None:
    created = create_user(server, admin, "plain").json()
    assert created["displayname"] == "plain"


def test_modify_user(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "bob")
    bob = login(server.url, "bob")
    reply = call(
        server,
        admin,
        "PUT",
        user_path(uid("bob")),
        {"displayname": "Bobby", "admin": True, "user_type": "bot", "locked": True},
    )
    assert reply.status == 200, reply.body
    user = reply.json()
    assert (user["displayname"], user["admin"], user["user_type"], user["locked"]) == (
        "Bobby",
        True,
        "bot",
        True,
    )
    reply = call(
        server, admin, "PUT", user_path(uid("bob")), {"displayname": "", "user_type": None}
    )
    assert (reply.json()["displayname"], reply.json()["user_type"]) == (None, None)
    # a new password logs out every device unless told otherwise
    reply = call(
        server,
        admin,
        "PUT",
        user_path(uid("bob")),
        {"password": "new one", "logout_devices": False, "locked": False},
    )
    assert reply.status == 200
    assert call(server, bob, "GET", CLIENT + "/account/whoami").status == 200
    call(server, admin, "PUT", user_path(uid("bob")), {"password": "newer one"})
    assert call(server, bob, "GET", CLIENT + "/account/whoami").errcode == "M_UNKNOWN_TOKEN"
    login(server.url, "bob", "newer one")


def test_deactivate_and_reactivate_through_put(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "dora")
    reply = call(server, admin, "PUT", user_path(uid("dora")), {"deactivated": True})
    assert reply.json()["deactivated"] is True
    # the password went with the deactivation: reactivating needs a new one
    reply = call(server, admin, "PUT", user_path(uid("dora")), {"deactivated": False})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = call(
        server,
        admin,
        "PUT",
        user_path(uid("dora")),
        {"deactivated": False, "password": "back again"},
    )
    assert reply.json()["deactivated"] is False
    login(server.url, "dora", "back again")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"admin": "yes"}, "M_BAD_JSON"),
        ({"deactivated": 1}, "M_BAD_JSON"),
        ({"locked": "no"}, "M_BAD_JSON"),
        ({"logout_devices": None}, "M_BAD_JSON"),
        ({"password": 5}, "M_BAD_JSON"),
        ({"password": "x" * 513}, "M_INVALID_PARAM"),
        ({"user_type": "wizard"}, "M_INVALID_PARAM"),
        ({"user_type": 3}, "M_BAD_JSON"),
        ({"deactivated": True, "locked": True}, "M_INVALID_PARAM"),
        ({"displayname": 7}, "M_BAD_JSON"),
        (
            {"displayname": "ok", "avatar_url": "mxc://test.localhost/" + "a" * 1000},
            "M_INVALID_PARAM",
        ),
    ],
)
def test_put_user_refuses_bad_input(
    server: RunningServer, admin: Session, body: dict[str, Any], errcode: str
) -> None:
    reply = call(server, admin, "PUT", user_path(uid("never-made")), body)
    assert (reply.status, reply.errcode) == (400, errcode)
    assert call(server, admin, "GET", user_path(uid("never-made"))).status == 404


def test_put_user_changes_nothing_when_a_field_is_refused(
    server: RunningServer, admin: Session
) -> None:
    create_user(server, admin, "steady", displayname="Steady")
    # any string is an avatar URL (as in Synapse), but not one past 1000 characters
    body = {"displayname": "Changed", "admin": True, "avatar_url": "mxc://x/" + "a" * 1000}
    reply = call(server, admin, "PUT", user_path(uid("steady")), body)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    user = call(server, admin, "GET", user_path(uid("steady"))).json()
    assert (user["displayname"], user["admin"]) == ("Steady", False)


def test_put_user_refuses_bad_user_ids(server: RunningServer, admin: Session) -> None:
    reply = call(server, admin, "PUT", user_path("@someone:elsewhere.example"), {})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = call(server, admin, "PUT", user_path(uid("UPPER")), {})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_USERNAME")


def test_admin_may_not_demote_themselves(server: RunningServer, admin: Session) -> None:
    reply = call(server, admin, "PUT", user_path(admin.user_id), {"admin": False})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = call(
        server, admin, "PUT", f"{ADMIN}/v1/users/{quote(admin.user_id)}/admin", {"admin": False}
    )
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    assert call(server, admin, "GET", user_path(admin.user_id)).json()["admin"] is True


def test_query_errors(server: RunningServer, admin: Session) -> None:
    reply = call(server, admin, "GET", user_path(uid("ghost")))
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = call(server, admin, "GET", user_path("@someone:elsewhere.example"))
    assert (reply.status, reply.errcode, reply.json()["error"]) == (
        400,
        "M_INVALID_PARAM",
        "Can only look up local users",
    )


# -- the admin flag --


def test_get_and_set_admin(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "promotee")
    path = f"{ADMIN}/v1/users/{quote(uid('promotee'))}/admin"
    assert call(server, admin, "GET", path).json() == {"admin": False}
    assert call(server, admin, "PUT", path, {"admin": True}).json() == {}
    assert call(server, admin, "GET", path).json() == {"admin": True}
    promotee = login(server.url, "promotee")
    assert call(server, promotee, "GET", ADMIN + "/v2/users").status == 200
    assert call(server, admin, "PUT", path, {"admin": False}).status == 200
    reply = call(server, admin, "PUT", path, {})
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
    # null and strings are not false: refused, and the user stays what they were
    assert call(server, admin, "PUT", path, {"admin": True}).status == 200
    for wrong in (None, "false", 0):
        reply = call(server, admin, "PUT", path, {"admin": wrong})
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), wrong
    assert call(server, admin, "GET", path).json() == {"admin": True}
    reply = call(server, admin, "GET", f"{ADMIN}/v1/users/{quote(uid('ghost'))}/admin")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    remote = f"{ADMIN}/v1/users/{quote('@x:elsewhere.example')}/admin"
    for method, body in (("GET", None), ("PUT", {"admin": True})):
        reply = call(server, admin, method, remote, body)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# -- list --


def test_list_users(server: RunningServer, admin: Session) -> None:
    for name in ("list-a", "list-b", "list-c"):
        create_user(server, admin, name, displayname=f"Lister {name[-1].upper()}")
    call(server, admin, "PUT", user_path(uid("list-c")), {"deactivated": True})

    def listed(query: str) -> dict[str, Any]:
        reply = call(server, admin, "GET", ADMIN + "/v2/users" + query)
        assert reply.status == 200, reply.body
        body: dict[str, Any] = reply.json()
        return body

    body = listed("?name=list-")
    assert [u["name"] for u in body["users"]] == [uid("list-a"), uid("list-b")]
    assert body["total"] == 2 and "next_token" not in body
    entry = body["users"][0]
    assert entry["displayname"] == "Lister A" and entry["deactivated"] is False
    assert entry["creation_ts"] > 1_600_000_000_000  # milliseconds in the list
    assert set(entry) >= {"is_guest", "admin", "user_type", "erased", "avatar_url", "locked"}

    body = listed("?name=list-&deactivated=true")
    assert [u["name"] for u in body["users"]] == [uid(n) for n in ("list-a", "list-b", "list-c")]
    # name matches display names too
    assert [u["name"] for u in listed("?name=lister%20b")["users"]] == [uid("list-b")]
    assert [u["name"] for u in listed("?user_id=list-b")["users"]] == [uid("list-b")]

    page = listed("?name=list-&deactivated=true&limit=2")
    assert (len(page["users"]), page["total"], page["next_token"]) == (2, 3, "2")
    rest = listed("?name=list-&deactivated=true&limit=2&from=" + page["next_token"])
    assert [u["name"] for u in rest["users"]] == [uid("list-c")] and "next_token" not in rest
    backwards = listed("?name=list-&deactivated=true&dir=b")
    assert [u["name"] for u in backwards["users"]] == [
        uid(n) for n in ("list-c", "list-b", "list-a")
    ]
    by_display = listed("?name=list-&order_by=displayname&dir=b")
    assert [u["displayname"] for u in by_display["users"]] == ["Lister B", "Lister A"]
    admins = listed("?admins=true")
    assert admin.user_id in [u["name"] for u in admins["users"]]
    assert all(u["admin"] for u in admins["users"])


@pytest.mark.parametrize(
    "query", ["?from=-1", "?limit=-5", "?limit=ten", "?order_by=password", "?dir=up", "?guests=1"]
)
def test_list_users_refuses_bad_parameters(
    server: RunningServer, admin: Session, query: str
) -> None:
    reply = call(server, admin, "GET", ADMIN + "/v2/users" + query)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# -- reset password, deactivate --


def test_reset_password(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "forgetful")
    old = login(server.url, "forgetful")
    path = f"{ADMIN}/v1/reset_password/{quote(uid('forgetful'))}"
    reply = call(
        server, admin, "POST", path, {"new_password": "remembered", "logout_devices": False}
    )
    assert (reply.status, reply.json()) == (200, {})
    assert call(server, old, "GET", CLIENT + "/account/whoami").status == 200
    assert call(server, admin, "POST", path, {"new_password": "again"}).status == 200
    assert call(server, old, "GET", CLIENT + "/account/whoami").errcode == "M_UNKNOWN_TOKEN"
    login(server.url, "forgetful", "again")

    reply = call(server, admin, "POST", path, {})
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")
    # null is a value of the wrong type, like a number
    for wrong in (None, 12):
        reply = call(server, admin, "POST", path, {"new_password": wrong})
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    login(server.url, "forgetful", "again")
    ghost = f"{ADMIN}/v1/reset_password/{quote(uid('ghost'))}"
    reply = call(server, admin, "POST", ghost, {"new_password": "x"})
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    remote = f"{ADMIN}/v1/reset_password/{quote('@x:elsewhere.example')}"
    reply = call(server, admin, "POST", remote, {"new_password": "x"})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


def test_deactivate(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "leaver", displayname="Leaver")
    create_user(server, admin, "eraser", displayname="Eraser")
    leaver, eraser = login(server.url, "leaver"), login(server.url, "eraser")
    path = f"{ADMIN}/v1/deactivate/"
    # an empty body is allowed
    reply = call(server, admin, "POST", path + quote(uid("leaver")), b"")
    assert (reply.status, reply.json()) == (200, {"id_server_unbind_result": "success"})
    reply = call(server, admin, "POST", path + quote(uid("eraser")), {"erase": True})
    assert reply.status == 200
    for session in (leaver, eraser):
        assert call(server, session, "GET", CLIENT + "/account/whoami").errcode == "M_UNKNOWN_TOKEN"
    left = call(server, admin, "GET", user_path(uid("leaver"))).json()
    erased = call(server, admin, "GET", user_path(uid("eraser"))).json()
    assert (left["deactivated"], left["erased"], left["displayname"]) == (True, False, "Leaver")
    assert (erased["deactivated"], erased["erased"], erased["displayname"]) == (True, True, None)
    reply = request(
        "POST",
        server.url + CLIENT + "/login",
        {"type": "m.login.password", "user": "leaver", "password": DEFAULT_PASSWORD},
    )
    assert reply.status == 403

    reply = call(server, admin, "POST", path + quote(uid("leaver")), {"erase": "yes"})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = call(server, admin, "POST", path + quote(uid("ghost")), {})
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = call(server, admin, "POST", path + quote("@x:elsewhere.example"), {})
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# -- whois --


def test_whois_shows_connections_per_device(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "watched")
    watched = login(server.url, "watched")
    # an authenticated request is what records where the session was seen
    request(
        "GET",
        server.url + CLIENT + "/account/whoami",
        headers={**watched.headers, "User-Agent": "whois-test/1.0"},
    )
    admin_path = f"{ADMIN}/v1/whois/{quote(watched.user_id)}"
    for path in (admin_path, f"/_matrix/client/v3/admin/whois/{quote(watched.user_id)}"):
        # an admin, or the user themselves
        for who in (admin, watched):
            reply = call(server, who, "GET", path)
            assert reply.status == 200
            body = reply.json()
            assert body["user_id"] == watched.user_id
            connections = body["devices"][watched.device_id]["sessions"][0]["connections"]
            assert any(c["user_agent"] == "whois-test/1.0" for c in connections)
            assert all(c["ip"] == "127.0.0.1" and c["last_seen"] > 0 for c in connections)


def test_whois_errors(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "nosy")
    nosy = login(server.url, "nosy")
    reply = call(server, nosy, "GET", f"{ADMIN}/v1/whois/{quote(admin.user_id)}")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = call(server, admin, "GET", f"{ADMIN}/v1/whois/{quote('@x:elsewhere.example')}")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = call(server, None, "GET", f"{ADMIN}/v1/whois/{quote(admin.user_id)}")
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")


# -- who may call --


def test_non_admins_are_forbidden(server: RunningServer, admin: Session) -> None:
    create_user(server, admin, "plainuser")
    user = login(server.url, "plainuser")
    target = quote(uid("plainuser"))
    calls = [
        ("GET", ADMIN + "/v2/users", None),
        ("GET", ADMIN + f"/v2/users/{target}", None),
        ("PUT", ADMIN + f"/v2/users/{target}", {"admin": True}),
        ("GET", ADMIN + f"/v1/users/{target}/admin", None),
        ("PUT", ADMIN + f"/v1/users/{target}/admin", {"admin": True}),
        ("POST", ADMIN + f"/v1/deactivate/{target}", {}),
        ("POST", ADMIN + f"/v1/reset_password/{target}", {"new_password": "x"}),
    ]
    for method, path, body in calls:
        reply = call(server, user, method, path, body)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), path
        reply = call(server, None, method, path, body)
        assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN"), path
    assert call(server, admin, "GET", ADMIN + f"/v2/users/{target}").json()["admin"] is False


def test_registration_token_validity_when_registration_is_off(server: RunningServer) -> None:
    reply = request(
        "GET",
        server.url + "/_matrix/client/v1/register/m.login.registration_token/validity?token=x",
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
