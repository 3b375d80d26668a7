"""A user's devices, sessions, joined rooms and account data through the admin API, over
HTTP on both engines, with Synapse's shapes and refusals."""

from __future__ import annotations

import time

from tests.admin.conftest import ADMIN, call, q, uid
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, login, register


def devices_path(user_id: str) -> str:
    return f"{ADMIN}/v2/users/{q(user_id)}/devices"


def test_refusals_common_to_every_endpoint(server: RunningServer, admin: Session) -> None:
    someone = register(server.url, "nosy")
    paths = [
        ("GET", devices_path(someone.user_id)),
        ("GET", f"{devices_path(someone.user_id)}/{someone.device_id}"),
        ("POST", f"{ADMIN}/v1/users/{q(someone.user_id)}/login"),
        ("GET", f"{ADMIN}/v1/users/{q(someone.user_id)}/joined_rooms"),
        ("GET", f"{ADMIN}/v1/users/{q(someone.user_id)}/accountdata"),
        ("GET", f"{ADMIN}/v1/users/{q(someone.user_id)}/sent_invite_count"),
        ("GET", f"{ADMIN}/v1/users/{q(someone.user_id)}/cumulative_joined_room_count"),
    ]
    for method, path in paths:
        assert call(server, None, method, path).errcode == "M_MISSING_TOKEN"
        refused = call(server, someone, method, path, {} if method == "POST" else None)
        assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN"), path
        unknown = path.replace(q(someone.user_id), q(uid("ghost")))
        reply = call(server, admin, method, unknown, {} if method == "POST" else None)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), path
        remote = path.replace(q(someone.user_id), q("@nosy:elsewhere.example"))
        reply = call(server, admin, method, remote, {} if method == "POST" else None)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), path


def test_devices_listed_renamed_and_logged_out(server: RunningServer, admin: Session) -> None:
    dora = register(server.url, "dora")
    second = login(server.url, "dora")
    listed = call(server, admin, "GET", devices_path(dora.user_id))
    assert listed.status == 200
    body = listed.json()
    assert body["total"] == 2
    assert {d["device_id"] for d in body["devices"]} == {dora.device_id, second.device_id}
    for device in body["devices"]:
        assert device["user_id"] == dora.user_id
        assert set(device) >= {
            "display_name",
            "last_seen_ip",
            "last_seen_ts",
            "last_seen_user_agent",
        }

    one = f"{devices_path(dora.user_id)}/{second.device_id}"
    assert call(server, admin, "PUT", one, {"display_name": "Work laptop"}).status == 200
    shown = call(server, admin, "GET", one).json()
    assert shown["display_name"] == "Work laptop"
    # the user sees the admin's name for it
    own = authed(dora, "GET", server.url + CLIENT + f"/devices/{second.device_id}").json()
    assert own["display_name"] == "Work laptop"
    bad = call(server, admin, "PUT", one, {"display_name": 7})
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")
    missing = call(server, admin, "GET", f"{devices_path(dora.user_id)}/NOSUCH")
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    assert call(server, admin, "PUT", f"{devices_path(dora.user_id)}/NOSUCH", {}).status == 404

    # deleting logs the device out
    assert call(server, admin, "DELETE", one).status == 200
    assert authed(second, "GET", server.url + CLIENT + "/account/whoami").status == 401
    assert authed(dora, "GET", server.url + CLIENT + "/account/whoami").status == 200
    # as Synapse: deleting what is not there is not an error
    assert call(server, admin, "DELETE", one).status == 200

    third = login(server.url, "dora")
    delete_many = f"{ADMIN}/v2/users/{q(dora.user_id)}/delete_devices"
    no_list = call(server, admin, "POST", delete_many, {})
    assert (no_list.status, no_list.errcode) == (400, "M_MISSING_PARAM")
    not_strings = call(server, admin, "POST", delete_many, {"devices": [1]})
    assert (not_strings.status, not_strings.errcode) == (400, "M_BAD_JSON")
    reply = call(server, admin, "POST", delete_many, {"devices": [dora.device_id, third.device_id]})
    assert reply.status == 200
    assert call(server, admin, "GET", devices_path(dora.user_id)).json() == {
        "devices": [],
        "total": 0,
    }
    assert authed(third, "GET", server.url + CLIENT + "/account/whoami").status == 401


def test_admin_creates_a_device(server: RunningServer, admin: Session) -> None:
    bridged = register(server.url, "bridged")
    reply = call(server, admin, "POST", devices_path(bridged.user_id), {"device_id": "BRIDGE"})
    assert reply.status == 201
    ids = {
        d["device_id"]
        for d in call(server, admin, "GET", devices_path(bridged.user_id)).json()["devices"]
    }
    assert "BRIDGE" in ids
    missing = call(server, admin, "POST", devices_path(bridged.user_id), {})
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")


def test_login_as_a_user(server: RunningServer, admin: Session) -> None:
    erin = register(server.url, "erin")
    path = f"{ADMIN}/v1/users/{q(erin.user_id)}/login"
    reply = call(server, admin, "POST", path, {})
    assert reply.status == 200
    token = reply.json()["access_token"]
    puppet = Session(erin.user_id, token, "")
    whoami = authed(puppet, "GET", server.url + CLIENT + "/account/whoami").json()
    assert whoami["user_id"] == erin.user_id
    # no device is made for it: the user's list of sessions is unchanged
    devices = call(server, admin, "GET", devices_path(erin.user_id)).json()
    assert [d["device_id"] for d in devices["devices"]] == [erin.device_id]

    short = call(server, admin, "POST", path, {"valid_until_ms": int(time.time() * 1000) + 1500})
    assert short.status == 200
    expiring = Session(erin.user_id, short.json()["access_token"], "")
    assert authed(expiring, "GET", server.url + CLIENT + "/account/whoami").status == 200
    time.sleep(2)
    assert authed(expiring, "GET", server.url + CLIENT + "/account/whoami").status == 401

    past = call(server, admin, "POST", path, {"valid_until_ms": 1000})
    assert (past.status, past.errcode) == (400, "M_INVALID_PARAM")
    wrong_type = call(server, admin, "POST", path, {"valid_until_ms": "soon"})
    assert (wrong_type.status, wrong_type.errcode) == (400, "M_BAD_JSON")
    self_login = call(server, admin, "POST", f"{ADMIN}/v1/users/{q(admin.user_id)}/login", {})
    assert self_login.status == 400


def test_joined_rooms_and_account_data(server: RunningServer, admin: Session) -> None:
    fay = register(server.url, "fay")
    first = create_room(server.url, fay)
    second = create_room(server.url, fay)
    left = create_room(server.url, fay)
    assert authed(fay, "POST", server.url + CLIENT + f"/rooms/{q(left)}/leave", {}).status == 200
    reply = call(server, admin, "GET", f"{ADMIN}/v1/users/{q(fay.user_id)}/joined_rooms")
    assert reply.status == 200
    assert reply.json() == {"joined_rooms": sorted([first, second]), "total": 2}

    put = authed(
        fay,
        "PUT",
        server.url + CLIENT + f"/user/{q(fay.user_id)}/account_data/org.example.colour",
        {"colour": "green"},
    )
    assert put.status == 200
    room_put = authed(
        fay,
        "PUT",
        server.url
        + CLIENT
        + f"/user/{q(fay.user_id)}/rooms/{q(first)}/account_data/org.example.pin",
        {"pinned": True},
    )
    assert room_put.status == 200
    data = call(server, admin, "GET", f"{ADMIN}/v1/users/{q(fay.user_id)}/accountdata").json()
    assert data["account_data"]["global"]["org.example.colour"] == {"colour": "green"}
    assert data["account_data"]["rooms"] == {first: {"org.example.pin": {"pinned": True}}}


def test_invites_sent_and_rooms_joined(server: RunningServer, admin: Session) -> None:
    gus = register(server.url, "gus")
    hal = register(server.url, "hal_counts")
    ida = register(server.url, "ida_counts")
    counts = f"{ADMIN}/v1/users/{q(gus.user_id)}"
    assert call(server, admin, "GET", f"{counts}/sent_invite_count").json() == {"invite_count": 0}
    rooms = [create_room(server.url, gus) for _ in range(2)]
    for room_id in rooms:
        for guest in (hal, ida):
            invite = authed(
                gus,
                "POST",
                server.url + CLIENT + f"/rooms/{q(room_id)}/invite",
                {"user_id": guest.user_id},
            )
            assert invite.status == 200
    # leaving and joining again counts the room once
    authed(gus, "POST", server.url + CLIENT + f"/rooms/{q(rooms[0])}/leave", {})
    left_at = int(time.time() * 1000)
    time.sleep(0.01)
    third = create_room(server.url, gus)
    assert call(server, admin, "GET", f"{counts}/sent_invite_count").json() == {"invite_count": 4}
    joined = call(server, admin, "GET", f"{counts}/cumulative_joined_room_count").json()
    assert joined == {"cumulative_joined_room_count": 3}
    # from a time on: only the room made since
    later = call(server, admin, "GET", f"{counts}/cumulative_joined_room_count?from_ts={left_at}")
    assert later.json() == {"cumulative_joined_room_count": 1}
    assert call(server, admin, "GET", f"{counts}/sent_invite_count?from_ts={left_at}").json() == {
        "invite_count": 0
    }
    assert third
    bad = call(server, admin, "GET", f"{counts}/sent_invite_count?from_ts=yesterday")
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    assert call(server, gus, "GET", f"{counts}/sent_invite_count").errcode == "M_FORBIDDEN"
