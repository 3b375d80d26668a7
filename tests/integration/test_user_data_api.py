"""Profiles, account data, room tags, filters and capabilities over real HTTP, with the
default configuration, on both engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, make_admin, register

V3 = "/_matrix/client/v3"
ROOM = "!room:test.localhost"


server = module_server(
    enable_registration=True,
    enable_registration_without_verification=True,
    allow_guest_access=True,
)


_counter = iter(range(1_000_000))


@pytest.fixture
def alice(server: RunningServer) -> Session:
    return register(server.url, f"alice{next(_counter)}", password="correct horse battery")


@pytest.fixture
def bob(server: RunningServer) -> Session:
    return register(server.url, f"bob{next(_counter)}", password="correct horse battery")


def call(
    server: RunningServer,
    method: str,
    path: str,
    session: Session | None = None,
    body: Any = None,
) -> Reply:
    headers = {"Authorization": f"Bearer {session.access_token}"} if session else {}
    return request(method, server.url + V3 + path, body, headers)


def u(user_id: str) -> str:
    return quote(user_id, safe="")


# --- profiles --------------------------------------------------------------------------


def test_new_user_profile_has_the_localpart_as_display_name(
    server: RunningServer, alice: Session
) -> None:
    localpart = alice.user_id[1:].split(":")[0]
    reply = call(server, "GET", f"/profile/{u(alice.user_id)}")
    assert (reply.status, reply.json()) == (200, {"displayname": localpart})
    reply = call(server, "GET", f"/profile/{u(alice.user_id)}/displayname")
    assert (reply.status, reply.json()) == (200, {"displayname": localpart})
    # as Synapse: an unset display name or avatar is 200 {}, not a 404
    reply = call(server, "GET", f"/profile/{u(alice.user_id)}/avatar_url")
    assert (reply.status, reply.json()) == (200, {})


def test_set_display_name_and_avatar_then_read_back(server: RunningServer, alice: Session) -> None:
    me = u(alice.user_id)
    assert (
        call(server, "PUT", f"/profile/{me}/displayname", alice, {"displayname": "Alice"}).status
        == 200
    )
    reply = call(
        server,
        "PUT",
        f"/profile/{me}/avatar_url",
        alice,
        {"avatar_url": "mxc://test.localhost/abc"},
    )
    assert (reply.status, reply.json()) == (200, {})
    reply = call(server, "GET", f"/profile/{me}")
    assert reply.json() == {"displayname": "Alice", "avatar_url": "mxc://test.localhost/abc"}
    # an empty value unsets the field
    assert call(server, "PUT", f"/profile/{me}/avatar_url", alice, {"avatar_url": ""}).status == 200
    reply = call(server, "GET", f"/profile/{me}/avatar_url")
    assert (reply.status, reply.json()) == (200, {})
    assert call(server, "GET", f"/profile/{me}").json() == {"displayname": "Alice"}
    # as Synapse: any string is stored, not only an mxc:// URI
    for avatar in ("LemurLover", "http://example.com/avatar.png"):
        reply = call(server, "PUT", f"/profile/{me}/avatar_url", alice, {"avatar_url": avatar})
        assert reply.status == 200
        assert call(server, "GET", f"/profile/{me}/avatar_url").json() == {"avatar_url": avatar}


def test_delete_fields_and_an_empty_profile_is_not_found(
    server: RunningServer, alice: Session
) -> None:
    me = u(alice.user_id)
    assert call(server, "DELETE", f"/profile/{me}/displayname", alice).status == 200
    reply = call(server, "GET", f"/profile/{me}/displayname")
    assert (reply.status, reply.json()) == (200, {})
    reply = call(server, "GET", f"/profile/{me}")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    # deleting what is not there succeeds
    assert call(server, "DELETE", f"/profile/{me}/org.example.none", alice).status == 200


def test_custom_fields(server: RunningServer, alice: Session) -> None:
    me = u(alice.user_id)
    value = {"title": "Engineer", "since": 2020}
    assert (
        call(
            server, "PUT", f"/profile/{me}/org.example.job", alice, {"org.example.job": value}
        ).status
        == 200
    )
    assert call(server, "PUT", f"/profile/{me}/m.tz", alice, {"m.tz": "Europe/Paris"}).status == 200
    assert call(server, "GET", f"/profile/{me}/org.example.job").json() == {
        "org.example.job": value
    }
    profile = call(server, "GET", f"/profile/{me}").json()
    assert profile["org.example.job"] == value
    assert profile["m.tz"] == "Europe/Paris"
    assert call(server, "DELETE", f"/profile/{me}/org.example.job", alice).status == 200
    assert call(server, "GET", f"/profile/{me}/org.example.job").status == 404


@pytest.mark.parametrize(
    ("key", "body", "errcode"),
    [
        ("displayname", {"displayname": 5}, "M_BAD_JSON"),
        ("displayname", {"displayname": None}, "M_INVALID_PARAM"),
        ("displayname", {"displayname": "x" * 257}, "M_INVALID_PARAM"),
        ("displayname", {"other": "x"}, "M_MISSING_PARAM"),
        ("avatar_url", {"avatar_url": ["mxc://a/b"]}, "M_BAD_JSON"),
        ("m.tz", {"m.tz": 3}, "M_BAD_JSON"),
        ("NotNamespaced", {"NotNamespaced": 1}, "M_INVALID_PARAM"),
        ("org." + "x" * 260, {"org." + "x" * 260: 1}, "M_KEY_TOO_LARGE"),
        ("org.example.big", {"org.example.big": "x" * 70_000}, "M_PROFILE_TOO_LARGE"),
    ],
)
def test_bad_profile_values_are_refused(
    server: RunningServer, alice: Session, key: str, body: dict[str, Any], errcode: str
) -> None:
    me = u(alice.user_id)
    before = call(server, "GET", f"/profile/{me}").json()
    reply = call(server, "PUT", f"/profile/{me}/{key}", alice, body)
    assert (reply.status, reply.errcode) == (400, errcode)
    assert call(server, "GET", f"/profile/{me}").json() == before


def test_profile_body_must_be_a_json_object(server: RunningServer, alice: Session) -> None:
    path = f"/profile/{u(alice.user_id)}/displayname"
    assert call(server, "PUT", path, alice, b"{nope").errcode == "M_NOT_JSON"
    reply = call(server, "PUT", path, alice, b'["Alice"]')
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


def test_cannot_change_another_users_profile(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    for method, body in (("PUT", {"displayname": "Mallory"}), ("DELETE", None)):
        reply = call(server, method, f"/profile/{u(bob.user_id)}/displayname", alice, body)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    assert call(server, "GET", f"/profile/{u(bob.user_id)}/displayname").json() != {
        "displayname": "Mallory"
    }


def test_changing_a_profile_needs_a_valid_token(server: RunningServer, alice: Session) -> None:
    path = f"/profile/{u(alice.user_id)}/displayname"
    reply = call(server, "PUT", path, None, {"displayname": "x"})
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")
    reply = request(
        "PUT", server.url + V3 + path, {"displayname": "x"}, {"Authorization": "Bearer nope"}
    )
    assert (reply.status, reply.errcode) == (401, "M_UNKNOWN_TOKEN")


def test_unknown_and_malformed_users(server: RunningServer) -> None:
    reply = call(server, "GET", f"/profile/{u('@nobody:test.localhost')}")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = call(server, "GET", f"/profile/{u('@nobody:test.localhost')}/displayname")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = call(server, "GET", "/profile/not-a-user-id")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = call(server, "GET", f"/profile/{u('@a:test.localhost')}/Bad.Key")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


def test_admins_may_change_other_users_profiles(server: RunningServer, bob: Session) -> None:
    admin = make_admin(server.config_path, f"admin{next(_counter)}")
    path = f"/profile/{u(bob.user_id)}/displayname"
    assert call(server, "PUT", path, admin, {"displayname": "Renamed"}).status == 200
    assert call(server, "GET", path).json() == {"displayname": "Renamed"}
    reply = call(
        server,
        "PUT",
        f"/profile/{u('@ghost:test.localhost')}/displayname",
        admin,
        {"displayname": "x"},
    )
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = call(
        server,
        "PUT",
        f"/profile/{u('@a:elsewhere.example')}/displayname",
        admin,
        {"displayname": "x"},
    )
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


def test_guests_may_only_change_their_display_name(server: RunningServer) -> None:
    reply = request("POST", server.url + V3 + "/register?kind=guest", {})
    assert reply.status == 200, reply.body
    body = reply.json()
    guest = Session(body["user_id"], body["access_token"], body["device_id"])
    me = u(guest.user_id)
    assert (
        call(server, "PUT", f"/profile/{me}/displayname", guest, {"displayname": "Visitor"}).status
        == 200
    )
    assert call(server, "GET", f"/profile/{me}/displayname").json() == {"displayname": "Visitor"}
    for key, value in (("avatar_url", "mxc://test.localhost/a"), ("m.tz", "UTC")):
        reply = call(server, "PUT", f"/profile/{me}/{key}", guest, {key: value})
        assert (reply.status, reply.errcode) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    reply = call(server, "PUT", f"/user/{me}/account_data/org.example.c", guest, {})
    assert (reply.status, reply.errcode) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    assert call(server, "GET", "/capabilities", guest).status == 200


# --- account data ----------------------------------------------------------------------


def test_global_account_data_round_trip(server: RunningServer, alice: Session) -> None:
    path = f"/user/{u(alice.user_id)}/account_data/org.example.config"
    reply = call(server, "GET", path, alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert call(server, "PUT", path, alice, {"theme": "dark", "n": [1, 2]}).json() == {}
    assert call(server, "GET", path, alice).json() == {"theme": "dark", "n": [1, 2]}
    assert call(server, "PUT", path, alice, {"theme": "light"}).status == 200
    assert call(server, "GET", path, alice).json() == {"theme": "light"}


def test_room_account_data_is_separate_from_global(server: RunningServer, alice: Session) -> None:
    user = f"/user/{u(alice.user_id)}"
    room_path = f"{user}/rooms/{u(ROOM)}/account_data/org.example.c"
    assert call(server, "PUT", room_path, alice, {"room": True}).status == 200
    assert call(server, "GET", room_path, alice).json() == {"room": True}
    reply = call(server, "GET", f"{user}/account_data/org.example.c", alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    other_room = f"{user}/rooms/{u('!other:test.localhost')}/account_data/org.example.c"
    reply = call(server, "GET", other_room, alice)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


def test_account_data_of_other_users_is_forbidden(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    user = f"/user/{u(bob.user_id)}"
    for method, path in (
        ("GET", f"{user}/account_data/org.example.c"),
        ("PUT", f"{user}/account_data/org.example.c"),
        ("GET", f"{user}/rooms/{u(ROOM)}/account_data/org.example.c"),
        ("PUT", f"{user}/rooms/{u(ROOM)}/account_data/org.example.c"),
        ("GET", f"{user}/rooms/{u(ROOM)}/tags"),
        ("PUT", f"{user}/rooms/{u(ROOM)}/tags/u.work"),
        ("DELETE", f"{user}/rooms/{u(ROOM)}/tags/u.work"),
    ):
        reply = call(server, method, path, alice, {} if method == "PUT" else None)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), (method, path)


@pytest.mark.parametrize("data_type", ["m.fully_read", "m.push_rules"])
def test_server_controlled_types_are_refused(
    server: RunningServer, alice: Session, data_type: str
) -> None:
    user = f"/user/{u(alice.user_id)}"
    for path in (
        f"{user}/account_data/{data_type}",
        f"{user}/rooms/{u(ROOM)}/account_data/{data_type}",
    ):
        reply = call(server, "PUT", path, alice, {"event_id": "$x"})
        assert (reply.status, reply.errcode) == (405, "M_BAD_JSON")


def test_account_data_body_and_room_id_errors(server: RunningServer, alice: Session) -> None:
    user = f"/user/{u(alice.user_id)}"
    path = f"{user}/account_data/org.example.c"
    assert call(server, "PUT", path, alice, b"[1]").errcode == "M_BAD_JSON"
    assert call(server, "PUT", path, alice, b"nope").errcode == "M_NOT_JSON"
    bad_room = f"{user}/rooms/{u('#alias:test.localhost')}/account_data/org.example.c"
    for method in ("GET", "PUT"):
        reply = call(server, method, bad_room, alice, {} if method == "PUT" else None)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    reply = call(server, "GET", path, None)
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")


# --- tags ------------------------------------------------------------------------------


def test_tags_add_list_remove(server: RunningServer, alice: Session) -> None:
    room = f"/user/{u(alice.user_id)}/rooms/{u(ROOM)}"
    assert call(server, "GET", f"{room}/tags", alice).json() == {"tags": {}}
    assert call(server, "PUT", f"{room}/tags/m.favourite", alice, {"order": 0.25}).json() == {}
    assert call(server, "PUT", f"{room}/tags/u.work", alice, {}).status == 200
    assert call(server, "GET", f"{room}/tags", alice).json() == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}
    }
    # tags are the room's m.tag account data, as /sync will deliver them
    assert call(server, "GET", f"{room}/account_data/m.tag", alice).json() == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}
    }
    assert call(server, "DELETE", f"{room}/tags/m.favourite", alice).json() == {}
    assert call(server, "DELETE", f"{room}/tags/never.set", alice).status == 200
    assert call(server, "GET", f"{room}/tags", alice).json() == {"tags": {"u.work": {}}}


@pytest.mark.parametrize(
    ("tag", "body", "errcode"),
    [
        ("u.x", {"order": "first"}, "M_BAD_JSON"),
        ("u.x", {"order": True}, "M_BAD_JSON"),
        ("u.x", {"order": 1.5}, "M_INVALID_PARAM"),
        ("u.x", {"order": -0.1}, "M_INVALID_PARAM"),
        ("u." + "x" * 300, {}, "M_INVALID_PARAM"),
    ],
)
def test_bad_tags_are_refused(
    server: RunningServer, alice: Session, tag: str, body: dict[str, Any], errcode: str
) -> None:
    room = f"/user/{u(alice.user_id)}/rooms/{u(ROOM)}"
    reply = call(server, "PUT", f"{room}/tags/{tag}", alice, body)
    assert (reply.status, reply.errcode) == (400, errcode)
    assert call(server, "GET", f"{room}/tags", alice).json() == {"tags": {}}


def test_tag_body_must_be_an_object_and_room_id_valid(
    server: RunningServer, alice: Session
) -> None:
    user = f"/user/{u(alice.user_id)}"
    reply = call(server, "PUT", f"{user}/rooms/{u(ROOM)}/tags/u.x", alice, b"0.5")
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = call(server, "GET", f"{user}/rooms/not-a-room/tags", alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


# --- filters ---------------------------------------------------------------------------

FILTER = {
    "room": {
        "timeline": {"limit": 20, "types": ["m.room.message"]},
        "state": {"lazy_load_members": True},
    },
    "presence": {"not_types": ["*"]},
    "org.example.future_field": {"kept": True},
}


def test_filter_upload_and_download(server: RunningServer, alice: Session) -> None:
    path = f"/user/{u(alice.user_id)}/filter"
    reply = call(server, "POST", path, alice, FILTER)
    assert reply.status == 200
    filter_id = reply.json()["filter_id"]
    assert isinstance(filter_id, str) and not filter_id.startswith("{")
    assert call(server, "GET", f"{path}/{filter_id}", alice).json() == FILTER
    # the same filter again gets the same ID
    assert call(server, "POST", path, alice, FILTER).json() == {"filter_id": filter_id}


def test_timeline_limit_is_capped(server: RunningServer, alice: Session) -> None:
    path = f"/user/{u(alice.user_id)}/filter"
    filter_id = call(server, "POST", path, alice, {"room": {"timeline": {"limit": 5000}}}).json()[
        "filter_id"
    ]
    stored = call(server, "GET", f"{path}/{filter_id}", alice).json()
    assert stored == {"room": {"timeline": {"limit": 100}}}


@pytest.mark.parametrize(
    "body",
    [
        {"room": {"timeline": {"limit": -1}}},
        {"room": {"timeline": {"limit": "10"}}},
        {"room": {"rooms": ["#alias:test.localhost"]}},
        {"presence": {"senders": ["not-a-user"]}},
        {"event_format": "xml"},
        {"room": "everything"},
    ],
)
def test_malformed_filters_are_refused(
    server: RunningServer, alice: Session, body: dict[str, Any]
) -> None:
    reply = call(server, "POST", f"/user/{u(alice.user_id)}/filter", alice, body)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")


def test_filter_errors(server: RunningServer, alice: Session, bob: Session) -> None:
    mine = f"/user/{u(alice.user_id)}/filter"
    filter_id = call(server, "POST", mine, alice, {}).json()["filter_id"]
    for path in (f"{mine}/999999999", f"{mine}/not-a-number", f"{mine}/99999999999999999999999"):
        reply = call(server, "GET", path, alice)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), path
    # bob cannot read or write alice's filters, nor find his own under her ID
    reply = call(server, "GET", f"{mine}/{filter_id}", bob)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = call(server, "POST", mine, bob, {})
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = call(server, "GET", f"/user/{u(bob.user_id)}/filter/{filter_id}", bob)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = call(server, "POST", mine, alice, b"[]")
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    reply = call(server, "POST", mine, None, {})
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")


# --- capabilities ----------------------------------------------------------------------


def test_capabilities_with_defaults(server: RunningServer, alice: Session) -> None:
    reply = call(server, "GET", "/capabilities", alice)
    assert reply.status == 200
    capabilities = reply.json()["capabilities"]
    assert capabilities["m.change_password"] == {"enabled": True}
    assert capabilities["m.room_versions"] == {
        "default": DEFAULT_ROOM_VERSION.identifier,
        "available": {version: "stable" for version in KNOWN_ROOM_VERSIONS},
    }
    assert capabilities["m.set_displayname"] == {"enabled": True}
    assert capabilities["m.set_avatar_url"] == {"enabled": True}
    assert capabilities["m.3pid_changes"] == {"enabled": True}
    assert capabilities["m.get_login_token"] == {"enabled": False}
    assert capabilities["m.profile_fields"] == {"enabled": True}


def test_capabilities_need_a_token(server: RunningServer) -> None:
    reply = call(server, "GET", "/capabilities")
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")
