"""Push behaviour SyTest and Synapse's clients rely on, over real HTTP on both engines:
pushers go with the session that created them, `dont_notify` and empty actions notify
nothing, and unread counts start at the user's join."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    login,
    register,
)
from tests.integration.test_push import (
    RULES,
    Gateway,
    create_room,
    pusher_body,
    pushers_of,
    send,
    set_pusher,
    text,
    wait_notifications,
)

# no gateway listens here: these tests only read pushers back, nothing is pushed
GATEWAY = "http://127.0.0.1:9/_matrix/push/v1/notify"

server = module_server(
    caches={"sync_response_cache_duration": 0},
    **REGISTRATION_CONFIG,
)

_counter = iter(range(10_000))


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    running.start()
    yield running
    running.stop()


def fresh_localpart(name: str) -> str:
    return f"{name}{next(_counter)}"


def pushkeys(server: RunningServer, session: Session) -> list[str]:
    return sorted(p["pushkey"] for p in pushers_of(server, session))


def add_pusher(server: RunningServer, session: Session, pushkey: str) -> None:
    reply = set_pusher(server, session, pusher_body(GATEWAY, pushkey))
    assert reply.status == 200, reply.body


def change_password(server: RunningServer, session: Session, localpart: str, **extra: Any) -> None:
    body = {
        "new_password": "a brand new password",
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": DEFAULT_PASSWORD,
        },
        **extra,
    }
    reply = authed(session, "POST", server.url + CLIENT + "/account/password", body)
    assert reply.status == 200, reply.body


# -- pushers follow the session that created them -----------------------------------------


def test_password_change_removes_the_pushers_of_other_sessions(server: RunningServer) -> None:
    localpart = fresh_localpart("pwd")
    main = register(server.url, localpart)
    other = login(server.url, localpart)
    add_pusher(server, other, "other-key")
    add_pusher(server, main, "main-key")
    assert pushkeys(server, main) == ["main-key", "other-key"]
    change_password(server, main, localpart)
    # the other session was logged out, and its phone gets no more pushes
    assert pushkeys(server, main) == ["main-key"]


def test_password_change_keeping_sessions_keeps_their_pushers(server: RunningServer) -> None:
    localpart = fresh_localpart("keep")
    main = register(server.url, localpart)
    other = login(server.url, localpart)
    add_pusher(server, other, "other-key")
    change_password(server, main, localpart, logout_devices=False)
    assert pushkeys(server, main) == ["other-key"]


def test_logout_removes_the_sessions_pushers(server: RunningServer) -> None:
    localpart = fresh_localpart("logout")
    main = register(server.url, localpart)
    phone = login(server.url, localpart)
    tablet = login(server.url, localpart)
    add_pusher(server, phone, "phone-key")
    add_pusher(server, tablet, "tablet-key")
    add_pusher(server, main, "main-key")
    # one device updating another's pusher does not take it over (as Synapse)
    add_pusher(server, main, "tablet-key")
    assert authed(phone, "POST", server.url + CLIENT + "/logout", {}).status == 200
    assert pushkeys(server, main) == ["main-key", "tablet-key"]
    assert authed(tablet, "POST", server.url + CLIENT + "/logout", {}).status == 200
    assert pushkeys(server, main) == ["main-key"]


def test_logout_all_removes_every_pusher(server: RunningServer) -> None:
    localpart = fresh_localpart("all")
    main = register(server.url, localpart)
    add_pusher(server, main, "main-key")
    add_pusher(server, login(server.url, localpart), "other-key")
    assert authed(main, "POST", server.url + CLIENT + "/logout/all", {}).status == 200
    assert pushkeys(server, login(server.url, localpart)) == []


# -- rules: what clients PUT is kept as sent ------------------------------------------------


def rules_of(server: RunningServer, session: Session, kind: str) -> list[dict[str, Any]]:
    reply = authed(session, "GET", f"{server.url}{RULES}/global/{kind}/")
    assert reply.status == 200, reply.body
    found: list[dict[str, Any]] = reply.json()
    return found


def put_rule(
    server: RunningServer, session: Session, kind: str, rule_id: str, body: Any, query: str = ""
) -> None:
    url = f"{server.url}{RULES}/global/{kind}/{quote(rule_id, safe='')}{query}"
    reply = authed(session, "PUT", url, body)
    assert reply.status == 200, reply.body


def test_rule_ids_synapse_accepts(server: RunningServer) -> None:
    user = register(server.url, fresh_localpart("ids"))
    # room rules named by alias (SyTest's own), placed before and after each other
    put_rule(server, user, "room", "#a:example.com", {"actions": ["notify"]})
    put_rule(server, user, "room", "#b:example.com", {"actions": ["notify"]})
    put_rule(
        server,
        user,
        "room",
        "#c:example.com",
        {"actions": ["notify"]},
        "?before=%23a%3Aexample.com",
    )
    put_rule(
        server, user, "room", "#d:example.com", {"actions": ["notify"]}, "?after=%23b%3Aexample.com"
    )
    assert [r["rule_id"] for r in rules_of(server, user, "room")] == [
        "#b:example.com",
        "#d:example.com",
        "#c:example.com",
        "#a:example.com",
    ]
    put_rule(server, user, "sender", "bob", {"actions": ["notify"]})
    put_rule(server, user, "content", "тест", {"actions": ["notify"], "pattern": "тест"})
    put_rule(server, user, "override", "my.rule-1_x", {"actions": [], "conditions": []})
    assert [r["rule_id"] for r in rules_of(server, user, "sender")] == ["bob"]
    assert [r["rule_id"] for r in rules_of(server, user, "content")] == ["тест"]
    assert "my.rule-1_x" in [r["rule_id"] for r in rules_of(server, user, "override")]


def test_historical_actions_are_kept_as_sent(server: RunningServer) -> None:
    user = register(server.url, fresh_localpart("hist"))
    put_rule(server, user, "sender", "@a_user:matrix.org", {"actions": ["dont_notify"]})
    url = f"{server.url}{RULES}/global/sender/%40a_user%3Amatrix.org/actions"
    assert authed(user, "GET", url).json() == {"actions": ["dont_notify"]}
    default = f"{server.url}{RULES}/global/override/.m.rule.master/actions"
    for actions in (["dont_notify"], ["coalesce"], []):
        assert authed(user, "PUT", default, {"actions": actions}).status == 200
        assert authed(user, "GET", default).json() == {"actions": actions}


# -- what notifies --------------------------------------------------------------------------


def room_counts(server: RunningServer, session: Session, room_id: str) -> dict[str, Any]:
    reply = authed(session, "GET", f"{server.url}{CLIENT}/sync")
    assert reply.status == 200, reply.body
    joined = reply.json()["rooms"]["join"][room_id]
    counts: dict[str, Any] = joined.get("unread_notifications", {})
    return counts


@pytest.mark.parametrize("actions", [["dont_notify"], [], ["coalesce"]])
def test_rules_without_notify_notify_nothing(server: RunningServer, actions: list[Any]) -> None:
    alice = register(server.url, fresh_localpart("quiet"))
    bob = register(server.url, fresh_localpart("loud"))
    room_id = create_room(server, bob, alice)
    put_rule(server, alice, "room", room_id, {"actions": actions})
    send(server, bob, room_id, text("not pushed"))
    mention = send(
        server, bob, room_id, text("pushed", **{"m.mentions": {"user_ids": [alice.user_id]}})
    )
    # the mention (an override rule) still notifies; the plain message does not
    found = [n["event"]["event_id"] for n in wait_notifications(server, alice, 1)]
    assert found == [mention]
    assert room_counts(server, alice, room_id)["notification_count"] == 1


def test_pusher_data_is_kept_whatever_its_format(server: RunningServer) -> None:
    user = register(server.url, fresh_localpart("fmt"))
    data = {"url": GATEWAY, "format": "id_event_only", "testcustom": "custom data"}
    body = pusher_body(GATEWAY, "fmt-key", data=data, profile_tag="tag")
    assert set_pusher(server, user, body).status == 200
    (pusher,) = pushers_of(server, user)
    assert pusher["data"] == data
    assert pusher["profile_tag"] == "tag"


# -- paths under /pushrules/ that name nothing ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/global"),
        ("GET", "/global/room"),
        ("GET", "/global/override/.m.rule.master/not_an_attr"),
        ("PUT", "/"),
        ("PUT", "/global"),
        ("PUT", "/global/room"),
        ("PUT", "/global/room/"),
        ("PUT", "/global/override/.m.rule.master/not_an_attr"),
        ("DELETE", "/global/room/"),
    ],
)
def test_unrecognized_push_rule_paths_are_400(
    server: RunningServer, method: str, path: str
) -> None:
    # Synapse answers 400 M_UNRECOGNIZED here (SyTest's push rule torture tests)
    user = register(server.url, fresh_localpart("torture"))
    body = None if method in ("GET", "DELETE") else {"enabled": True, "actions": []}
    reply = authed(user, method, server.url + RULES + path, body)
    assert (reply.status, reply.errcode) == (400, "M_UNRECOGNIZED"), reply.body


def test_push_rules_without_the_trailing_slash_is_404(server: RunningServer) -> None:
    user = register(server.url, fresh_localpart("noslash"))
    assert authed(user, "GET", server.url + RULES).status == 404


# -- badge updates ----------------------------------------------------------------------------


def test_a_receipt_pushes_the_new_badge_count(server: RunningServer, gateway: Gateway) -> None:
    alice = register(server.url, fresh_localpart("badger"))
    bob = register(server.url, fresh_localpart("badged"))
    room_id = create_room(server, alice, bob)
    pushkey = f"badge{next(_counter)}"
    assert set_pusher(server, bob, pusher_body(gateway.url, pushkey)).status == 200
    gateway.received.clear()
    event_id = send(server, alice, room_id, text("unread"))
    (pushed,) = gateway.wait_for(1)
    assert pushed["notification"]["event_id"] == event_id
    assert pushed["notification"]["counts"] == {"unread": 1}
    receipt = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}"
    assert authed(bob, "POST", receipt, {}).status == 200
    badge = gateway.wait_for(2)[1]["notification"]
    # a badge-only notification: the count, 0 included, and the device; no event
    assert badge["counts"] == {"unread": 0}
    assert "event_id" not in badge and "type" not in badge
    (device,) = badge["devices"]
    assert (device["app_id"], device["pushkey"], device["data"]) == (
        "org.example.app",
        pushkey,
        {},
    )
    # the same count again is not pushed
    assert authed(bob, "POST", receipt, {}).status == 200
    time.sleep(0.5)
    assert len(gateway.received) == 2


def test_pushed_fields_synapse_sends(server: RunningServer, gateway: Gateway) -> None:
    alice = register(server.url, fresh_localpart("inviter"))
    bob = register(server.url, fresh_localpart("invitee"))
    pushkey = f"fields{next(_counter)}"
    assert set_pusher(server, bob, pusher_body(gateway.url, pushkey)).status == 200
    created = authed(alice, "POST", server.url + CLIENT + "/createRoom", {})
    room_id = created.json()["room_id"]
    gateway.received.clear()
    invite = authed(
        alice,
        "POST",
        f"{server.url}{CLIENT}/rooms/{quote(room_id)}/invite",
        {"user_id": bob.user_id},
    )
    assert invite.status == 200, invite.body
    (pushed,) = gateway.wait_for(1)
    notification = pushed["notification"]
    assert notification["type"] == "m.room.member"
    # `id` is event_id's old name, still read by gateways (and SyTest)
    assert notification["id"] == notification["event_id"]
    assert notification["membership"] == "invite"
    assert notification["user_is_target"] is True
    assert notification["sender"] == alice.user_id
    # a room without a name is named by its canonical alias
    join = authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})
    assert join.status == 200, join.body
    alias = f"#pushed{next(_counter)}:{alice.user_id.split(':', 1)[1]}"
    directory = f"{server.url}{CLIENT}/directory/room/{quote(alias)}"
    assert authed(alice, "PUT", directory, {"room_id": room_id}).status == 200
    state = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.canonical_alias"
    assert authed(alice, "PUT", state, {"alias": alias}).status == 200
    gateway.received.clear()
    event_id = send(server, alice, room_id, text("named"))
    pushed_message = next(
        r["notification"]
        for r in gateway.wait_for(1)
        if r["notification"].get("event_id") == event_id
    )
    assert pushed_message["room_name"] == alias
    assert pushed_message["room_alias"] == alias
