"""synadm, the command-line tool admins use, run against Ranvier on both engines: its user,
room, notice, media and version commands, asserting what it prints."""

from __future__ import annotations

import json

from tests.admin.conftest import ADMIN, Synadm, call, q, uid
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    Session,
    authed,
    create_room,
    login,
    register,
    send_text,
)


def test_version(synadm: Synadm) -> None:
    assert "server_version" in synadm.json("version")


def test_user_commands(server: RunningServer, admin: Session, synadm: Synadm) -> None:
    modified = synadm.run(
        "user", "modify", uid("kim"), "--password", "a long password 1", "--display-name", "Kim"
    ).stdout
    # it prints the account before (not found yet) and after
    assert "User not found" in modified
    created = json.loads(modified[modified.rindex("\n{\n") :])
    assert created["name"] == uid("kim")
    assert created["displayname"] == "Kim"
    kim = login(server.url, "kim", "a long password 1")

    listed = synadm.json("user", "list", "--name", "kim")
    assert [u["name"] for u in listed["users"]] == [uid("kim")]
    details = synadm.json("user", "details", uid("kim"))
    assert details["displayname"] == "Kim" and details["admin"] is False

    room_id = create_room(server.url, kim)
    membership = synadm.json("user", "membership", uid("kim"), "--ids")
    assert membership["joined_rooms"] == [room_id]
    assert membership["total"] == 1

    whois = synadm.json("user", "whois", uid("kim"))
    assert kim.device_id in whois["devices"]

    token = synadm.json("user", "login", uid("kim"))["access_token"]
    puppet = Session(uid("kim"), token, "")
    assert authed(puppet, "GET", server.url + CLIENT + "/account/whoami").json()["user_id"] == uid(
        "kim"
    )

    # the device has not been seen for 90 days: nothing to prune, the listing shows it
    second = login(server.url, "kim", "a long password 1")
    # both were seen just now: not old enough to prune
    listed = synadm.run("user", "prune-devices", uid("kim"), "--list-only").stdout
    assert second.device_id not in listed
    # the tool reads the devices (with their last_seen_ts) and deletes the one named
    pruned = synadm.run("user", "prune-devices", uid("kim"), "--device-id", second.device_id)
    assert second.device_id in pruned.stdout
    devices = call(server, admin, "GET", f"{ADMIN}/v2/users/{q(uid('kim'))}/devices").json()
    assert [d["device_id"] for d in devices["devices"]] == [kim.device_id]
    assert authed(second, "GET", server.url + CLIENT + "/account/whoami").status == 401

    synadm.run("user", "password", uid("kim"), "--password", "another long password 2")
    login(server.url, "kim", "another long password 2")

    banned = synadm.json("user", "shadow-ban", uid("kim"))
    assert banned == {}
    assert (
        call(server, admin, "GET", f"{ADMIN}/v2/users/{q(uid('kim'))}").json()["shadow_banned"]
        is True
    )
    assert synadm.json("user", "shadow-ban", uid("kim"), "--unban") == {}
    assert (
        call(server, admin, "GET", f"{ADMIN}/v2/users/{q(uid('kim'))}").json()["shadow_banned"]
        is False
    )


def test_room_commands(server: RunningServer, admin: Session, synadm: Synadm) -> None:
    lee = register(server.url, "lee")
    mo = register(server.url, "mo")
    private = create_room(server.url, lee, name="Back office", preset="private_chat")
    public = create_room(server.url, lee, name="Lobby", preset="public_chat")

    rooms = synadm.json("room", "list")
    assert {private, public} <= {r["room_id"] for r in rooms["rooms"]}
    assert synadm.json("room", "details", private)["name"] == "Back office"
    assert synadm.json("room", "members", private)["members"] == [lee.user_id]
    state = synadm.json("room", "state", private)
    assert any(e["type"] == "m.room.create" for e in state["state"])

    # a public room: the user joins straight away
    assert synadm.json("room", "join", public, mo.user_id) == {"room_id": public}
    assert mo.user_id in synadm.json("room", "members", public)["members"]
    # a private room the admin is not in is refused
    refused = synadm.run("room", "join", private, mo.user_id, check=False)
    assert "M_FORBIDDEN" in refused.stdout + refused.stderr

    # make-admin: the room's creator gives the admin its power and invites them
    assert synadm.json("room", "make-admin", private) == {}
    levels = authed(
        lee, "GET", server.url + CLIENT + f"/rooms/{q(private)}/state/m.room.power_levels/"
    ).json()
    assert levels["users"][admin.user_id] == 100
    assert (
        authed(admin, "POST", server.url + CLIENT + f"/rooms/{q(private)}/join", {}).status == 200
    )
    # now the admin can bring others in
    assert synadm.json("room", "join", private, mo.user_id) == {"room_id": private}
    assert mo.user_id in synadm.json("room", "members", private)["members"]
    # and make another user admin
    assert synadm.json("room", "make-admin", private, "--user-id", mo.user_id) == {}
    levels = authed(
        lee, "GET", server.url + CLIENT + f"/rooms/{q(private)}/state/m.room.power_levels/"
    ).json()
    assert levels["users"][mo.user_id] == 100

    synadm.run("room", "block", private)
    assert synadm.json("room", "block-status", private)["block"] is True
    synadm.run("room", "block", "--unblock", private)
    assert synadm.json("room", "block-status", private) == {"block": False}


def test_room_admin_refusals(server: RunningServer, admin: Session) -> None:
    nat = register(server.url, "nat")
    room_id = create_room(server.url, nat)
    join = f"{ADMIN}/v1/join/{q(room_id)}"
    assert call(server, nat, "POST", join, {"user_id": nat.user_id}).errcode == "M_FORBIDDEN"
    assert call(server, admin, "POST", join, {}).errcode == "M_MISSING_PARAM"
    unknown_user = call(server, admin, "POST", join, {"user_id": uid("ghost")})
    assert (unknown_user.status, unknown_user.errcode) == (404, "M_NOT_FOUND")
    remote = call(server, admin, "POST", join, {"user_id": "@x:elsewhere.example"})
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    no_room = call(
        server,
        admin,
        "POST",
        f"{ADMIN}/v1/join/{q('!nope:test.localhost')}",
        {"user_id": nat.user_id},
    )
    assert (no_room.status, no_room.errcode) == (404, "M_NOT_FOUND")
    no_alias = call(
        server,
        admin,
        "POST",
        f"{ADMIN}/v1/join/{q('#nope:test.localhost')}",
        {"user_id": nat.user_id},
    )
    assert (no_alias.status, no_alias.errcode) == (404, "M_NOT_FOUND")

    make = f"{ADMIN}/v1/rooms/{q(room_id)}/make_room_admin"
    assert call(server, nat, "POST", make, {}).errcode == "M_FORBIDDEN"
    # with nobody local left who may change power levels, there is nobody to act through
    assert authed(nat, "POST", server.url + CLIENT + f"/rooms/{q(room_id)}/leave", {}).status == 200
    lonely = call(server, admin, "POST", make, {})
    assert (lonely.status, lonely.errcode) == (400, "M_UNKNOWN")
    bad = call(server, admin, "POST", make, {"user_id": 5})
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")


def test_notice_send(server: RunningServer, synadm: Synadm) -> None:
    oli = register(server.url, "oli")
    sent = synadm.json("notice", "send", oli.user_id, "Please update your client")
    assert len(sent) == 1 and sent[0]["event_id"].startswith("$")
    invites = authed(oli, "GET", server.url + CLIENT + "/sync?timeout=0").json()["rooms"]["invite"]
    assert len(invites) == 1


def test_media_list_of_a_user(server: RunningServer, synadm: Synadm) -> None:
    pat = register(server.url, "pat")
    upload = authed(pat, "POST", server.url + "/_matrix/media/v3/upload?filename=a.txt", b"hello")
    assert upload.status == 200, upload.body
    listed = synadm.json("user", "media", pat.user_id)
    assert listed["total"] == 1
    assert listed["media"][0]["upload_name"] == "a.txt"


def test_more_commands(server: RunningServer, admin: Session, synadm: Synadm) -> None:
    """The rest of synadm's everyday commands: registration tokens, media, history purges,
    room deletion, suspension and deactivation."""
    created = synadm.json("regtok", "new", "--token", "invite-only", "--uses-allowed", "2")
    assert created["token"] == "invite-only" and created["uses_allowed"] == 2
    listed = synadm.json("regtok", "list")
    assert [t["token"] for t in listed["registration_tokens"]] == ["invite-only"]
    assert (
        synadm.json("regtok", "update", "invite-only", "--uses-allowed", "5")["uses_allowed"] == 5
    )
    assert synadm.json("regtok", "details", "invite-only")["uses_allowed"] == 5
    synadm.run("regtok", "delete", "invite-only")
    assert synadm.json("regtok", "list")["registration_tokens"] == []

    una = register(server.url, "syn_una")
    upload = authed(una, "POST", server.url + "/_matrix/media/v3/upload?filename=u.txt", b"data")
    media_id = upload.json()["content_uri"].rsplit("/", 1)[1]
    synadm.run("media", "protect", media_id)
    shown = synadm.json("user", "media", una.user_id)["media"][0]
    assert shown["safe_from_quarantine"] is True
    assert synadm.json("media", "purge", "--before-days", "1") == {"deleted": 0}

    room_id = create_room(server.url, una)
    first = send_text(server.url, una, room_id, "old")
    send_text(server.url, una, room_id, "new")
    purge = synadm.json("history", "purge", room_id, "--before-event-id", first)
    assert "purge_id" in purge
    # it shows the room and its members, then the answer
    printed = synadm.run("room", "delete", room_id).stdout
    deleted = json.loads(printed[printed.rindex("\n{\n") :])
    assert "delete_id" in deleted
    status = synadm.json("room", "delete-status", "--delete-id", deleted["delete_id"])
    assert status["room_id"] == room_id

    synadm.run("user", "suspend", una.user_id)
    assert call(server, admin, "GET", f"{ADMIN}/v2/users/{q(una.user_id)}").json()["suspended"]
    synadm.run("user", "suspend", una.user_id, "--unsuspend")
    synadm.run("user", "deactivate", una.user_id)
    assert synadm.json("user", "details", una.user_id)["deactivated"] is True
