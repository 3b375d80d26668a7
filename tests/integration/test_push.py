"""Push over real HTTP on both engines: the push rules API and its default ruleset, the
notifications every message makes for the other members, counts cleared by receipts, and
pushers delivering to a local push gateway that records what it gets."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer, free_port
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, make_admin, register

CLIENT = "/_matrix/client/v3"
RULES = CLIENT + "/pushrules"

SPEC_OVERRIDE_IDS = [
    ".m.rule.master",
    ".m.rule.suppress_notices",
    ".m.rule.invite_for_me",
    ".m.rule.member_event",
    ".m.rule.is_user_mention",
    ".m.rule.is_room_mention",
    ".m.rule.tombstone",
    ".m.rule.reaction",
    ".m.rule.room.server_acl",
    ".m.rule.suppress_edits",
]
SPEC_UNDERRIDE_IDS = [
    ".m.rule.call",
    ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one",
    ".m.rule.message",
    ".m.rule.encrypted",
]


class Gateway:
    """A push gateway on loopback: records each notify request, fails the first `fail`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/_matrix/push/v1/notify"
        self.received: list[dict[str, Any]] = []
        self.fail = 0
        # pushkeys answered as rejected (spec: the gateway no longer knows them)
        self.reject: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.fail > 0:
            self.fail -= 1
            return web.json_response({"error": "try later"}, status=500)
        pushkeys = [d.get("pushkey") for d in body["notification"].get("devices", [])]
        return web.json_response({"rejected": [k for k in pushkeys if k in self.reject]})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/_matrix/push/v1/notify", self._notify)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


server = module_server(
    # counts are read by repeating one sync: compute it afresh every time
    caches={"sync_response_cache_duration": 0},
    **REGISTRATION_CONFIG,
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    running.start()
    yield running
    running.stop()


_counter = iter(range(10_000))


def fresh_user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}{next(_counter)}")


def create_room(server: RunningServer, creator: Session, *joiners: Session, **body: Any) -> str:
    invite = [j.user_id for j in joiners]
    reply = authed(creator, "POST", server.url + CLIENT + "/createRoom", {**body, "invite": invite})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    for joiner in joiners:
        joined = authed(joiner, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {})
        assert joined.status == 200, joined.body
    return room_id


def send(server: RunningServer, session: Session, room_id: str, content: dict[str, Any]) -> str:
    txn = f"t{next(_counter)}"
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{txn}"
    reply = authed(session, "PUT", url, content)
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def text(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


def notifications(server: RunningServer, session: Session, query: str = "") -> dict[str, Any]:
    reply = authed(session, "GET", f"{server.url}{CLIENT}/notifications{query}")
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def messages_only(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # the invite into each test's room notifies too (.m.rule.invite_for_me)
    return [n for n in found if n["event"]["type"] == "m.room.message"]


def wait_notifications(
    server: RunningServer, session: Session, count: int, query: str = ""
) -> list[dict[str, Any]]:
    """The m.room.message notifications; actions are recorded right after the send
    returns, so give them a moment."""
    deadline = time.monotonic() + 10
    while True:
        found = messages_only(notifications(server, session, query)["notifications"])
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- the ruleset --------------------------------------------------------------------------


def test_default_ruleset_is_the_spec(server: RunningServer) -> None:
    user = fresh_user(server, "rules")
    reply = authed(user, "GET", server.url + RULES + "/")
    assert reply.status == 200
    ruleset = reply.json()["global"]
    assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
    assert [r["rule_id"] for r in ruleset["override"]] == SPEC_OVERRIDE_IDS
    assert [r["rule_id"] for r in ruleset["underride"]] == SPEC_UNDERRIDE_IDS
    assert ruleset["content"] == ruleset["room"] == ruleset["sender"] == []
    assert all(r["default"] for r in ruleset["override"] + ruleset["underride"])
    master = ruleset["override"][0]
    assert master == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }
    mention = ruleset["override"][4]
    assert mention["conditions"] == [
        {
            "kind": "event_property_contains",
            "key": "content.m\\.mentions.user_ids",
            "value": user.user_id,
        }
    ]
    assert authed(user, "GET", server.url + RULES + "/global/").json() == ruleset
    # the same rules are the user's m.push_rules account data
    data = authed(
        user, "GET", f"{server.url}{CLIENT}/user/{user.user_id}/account_data/m.push_rules"
    )
    assert data.status == 200
    assert data.json() == {"global": ruleset}
    assert (
        authed(user, "GET", server.url + RULES + "/global/underride/").json()
        == ruleset["underride"]
    )


def test_rules_need_a_token(server: RunningServer) -> None:
    from tests.integration.client import request

    reply = request("GET", server.url + RULES + "/")
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


def _ids(server: RunningServer, user: Session, kind: str) -> list[str]:
    rules = authed(user, "GET", server.url + RULES + "/").json()["global"][kind]
    return [r["rule_id"] for r in rules if not r["default"]]


def test_put_get_delete_with_before_and_after(server: RunningServer) -> None:
    user = fresh_user(server, "order")
    base = server.url + RULES + "/global/override/"
    rule = {
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "x.y"}],
        "actions": ["notify"],
    }
    for name in ("a", "b"):
        assert authed(user, "PUT", base + name, rule).status == 200
    # a new rule without before/after is the most important
    assert _ids(server, user, "override") == ["b", "a"]
    assert authed(user, "PUT", base + "c?before=a", rule).status == 200
    assert _ids(server, user, "override") == ["b", "c", "a"]
    assert authed(user, "PUT", base + "d?after=b", rule).status == 200
    assert _ids(server, user, "override") == ["b", "d", "c", "a"]
    # replacing keeps the place; moving with after works
    assert authed(user, "PUT", base + "c", {**rule, "actions": []}).status == 200
    assert _ids(server, user, "override") == ["b", "d", "c", "a"]
    assert authed(user, "PUT", base + "b?after=a", rule).status == 200
    assert _ids(server, user, "override") == ["d", "c", "a", "b"]
    got = authed(user, "GET", base + "c")
    assert got.status == 200
    assert got.json() == {
        "rule_id": "c",
        "default": False,
        "enabled": True,
        "conditions": rule["conditions"],
        "actions": [],
    }
    assert authed(user, "DELETE", base + "c").status == 200
    assert authed(user, "GET", base + "c").status == 404
    assert _ids(server, user, "override") == ["d", "a", "b"]
    # the user defined rules rank below master and above the defaults
    ids = [
        r["rule_id"]
        for r in authed(user, "GET", server.url + RULES + "/").json()["global"]["override"]
    ]
    assert ids[:4] == [".m.rule.master", "d", "a", "b"]


def test_content_room_and_sender_rules(server: RunningServer) -> None:
    user = fresh_user(server, "kinds")
    base = server.url + RULES + "/global/"
    assert (
        authed(
            user, "PUT", base + "content/cake", {"pattern": "cake*", "actions": ["notify"]}
        ).status
        == 200
    )
    room = quote("!someroom:localhost")
    assert authed(user, "PUT", base + f"room/{room}", {"actions": []}).status == 200
    sender = quote("@boss:localhost")
    assert authed(user, "PUT", base + f"sender/{sender}", {"actions": ["notify"]}).status == 200
    ruleset = authed(user, "GET", server.url + RULES + "/").json()["global"]
    assert ruleset["content"] == [
        {
            "rule_id": "cake",
            "default": False,
            "enabled": True,
            "pattern": "cake*",
            "actions": ["notify"],
        }
    ]
    assert [r["rule_id"] for r in ruleset["room"]] == ["!someroom:localhost"]
    assert [r["rule_id"] for r in ruleset["sender"]] == ["@boss:localhost"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "errcode"),
    [
        ("PUT", "/global/override/.mine", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", "/global/nonsense/x", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", "/device/override/x", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", "/global/override/x?before=nope", {"actions": []}, 400, "M_UNKNOWN"),
        ("PUT", "/global/override/x?after=.m.rule.message", {"actions": []}, 400, "M_UNKNOWN"),
        ("PUT", "/global/override/x", {"conditions": []}, 400, "M_MISSING_PARAM"),
        ("PUT", "/global/override/x", {"actions": "notify"}, 400, "M_BAD_JSON"),
        (
            "PUT",
            "/global/override/x",
            {"actions": [], "conditions": {"kind": "x"}},
            400,
            "M_BAD_JSON",
        ),
        ("PUT", "/global/override/x", {"actions": [], "conditions": ["x"]}, 400, "M_BAD_JSON"),
        ("PUT", "/global/content/x", {"actions": [], "pattern": 5}, 400, "M_BAD_JSON"),
        ("PUT", "/global/override/x", {"actions": ["explode"]}, 400, "M_BAD_JSON"),
        ("PUT", "/global/content/x", {"actions": []}, 400, "M_BAD_JSON"),
        ("GET", "/global/override/nope", None, 404, "M_NOT_FOUND"),
        ("DELETE", "/global/override/nope", None, 404, "M_NOT_FOUND"),
        ("DELETE", "/global/override/.m.rule.master", None, 404, "M_NOT_FOUND"),
        ("GET", "/global/override/nope/enabled", None, 404, "M_NOT_FOUND"),
        ("PUT", "/global/override/nope/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
        ("PUT", "/global/override/.m.rule.master/enabled", {"enabled": "yes"}, 400, "M_BAD_JSON"),
        ("PUT", "/global/override/.m.rule.master/enabled", {}, 400, "M_MISSING_PARAM"),
        ("PUT", "/global/underride/.m.rule.message/actions", {}, 400, "M_MISSING_PARAM"),
        ("GET", "/global/override/nope/actions", None, 404, "M_NOT_FOUND"),
        ("PUT", "/global/override/nope/actions", {"actions": []}, 404, "M_NOT_FOUND"),
        ("PUT", "/global/underride/.m.rule.message/actions", {"actions": 5}, 400, "M_BAD_JSON"),
        ("GET", "/global/nonsense/", None, 400, "M_INVALID_PARAM"),
    ],
)
def test_rule_errors(
    server: RunningServer,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    errcode: str,
) -> None:
    user = fresh_user(server, "errs")
    reply = authed(user, method, server.url + RULES + path, body)
    assert reply.status == status, reply.body
    assert reply.errcode == errcode
    # nothing was written
    assert _ids(server, user, "override") == []


def test_enabled_and_actions_of_default_rules(server: RunningServer) -> None:
    user = fresh_user(server, "switch")
    url = server.url + RULES + "/global/override/.m.rule.master"
    assert authed(user, "GET", url + "/enabled").json() == {"enabled": False}
    assert authed(user, "PUT", url + "/enabled", {"enabled": True}).status == 200
    assert authed(user, "GET", url + "/enabled").json() == {"enabled": True}
    message = server.url + RULES + "/global/underride/.m.rule.message"
    assert authed(user, "GET", message + "/actions").json() == {"actions": ["notify"]}
    new = ["notify", {"set_tweak": "sound", "value": "bell"}]
    # historical actions are kept as sent (as Synapse), and ignored when evaluating
    assert authed(user, "PUT", message + "/actions", {"actions": ["coalesce"]}).status == 200
    assert authed(user, "GET", message + "/actions").json() == {"actions": ["coalesce"]}
    assert authed(user, "PUT", message + "/actions", {"actions": new}).status == 200
    assert authed(user, "GET", message + "/actions").json() == {"actions": new}
    data = authed(
        user, "GET", f"{server.url}{CLIENT}/user/{user.user_id}/account_data/m.push_rules"
    )
    underride = data.json()["global"]["underride"]
    assert next(r for r in underride if r["rule_id"] == ".m.rule.message")["actions"] == new


# -- notifications and counts ---------------------------------------------------------------


def test_messages_notify_other_members_and_mentions_highlight(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    plain = send(server, alice, room_id, text("hello all"))
    mention = send(
        server, alice, room_id, text("bob!", **{"m.mentions": {"user_ids": [bob.user_id]}})
    )
    send(server, alice, room_id, {"msgtype": "m.notice", "body": "a bot says hi"})
    found = wait_notifications(server, bob, 2)
    assert [n["event"]["event_id"] for n in found] == [mention, plain]
    newest = found[0]
    assert newest["room_id"] == room_id
    assert newest["read"] is False
    assert newest["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
    ]
    assert newest["event"]["content"]["body"] == "bob!"
    assert isinstance(newest["ts"], int)
    assert "profile_tag" in newest
    assert found[1]["actions"] == ["notify"]
    # carol was not mentioned, and the sender never notifies herself
    assert [n["event"]["event_id"] for n in wait_notifications(server, carol, 2)] == [
        mention,
        plain,
    ]
    assert notifications(server, alice)["notifications"] == []
    # bob's invite notified him, without a highlight
    everything = notifications(server, bob)["notifications"]
    invites = [n for n in everything if n["event"]["type"] == "m.room.member"]
    assert [n["event"]["content"]["membership"] for n in invites] == ["invite"]
    assert invites[0]["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}]
    only = notifications(server, bob, "?only=highlight")["notifications"]
    assert [n["event"]["event_id"] for n in only] == [mention]


def test_one_to_one_rooms_and_disabled_rules(server: RunningServer) -> None:
    alice, bob = fresh_user(server, "alice"), fresh_user(server, "bob")
    room_id = create_room(server, alice, bob)
    first = send(server, alice, room_id, text("just us"))
    found = wait_notifications(server, bob, 1)
    # .m.rule.room_one_to_one: two members, with a sound
    assert found[0]["event"]["event_id"] == first
    assert found[0]["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}]
    master = server.url + RULES + "/global/override/.m.rule.master/enabled"
    assert authed(bob, "PUT", master, {"enabled": True}).status == 200
    send(server, alice, room_id, text("silenced"))
    send(server, alice, room_id, text("still silenced"))
    time.sleep(0.5)
    assert len(messages_only(notifications(server, bob)["notifications"])) == 1


def test_notifications_paginate(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    sent = [send(server, alice, room_id, text(f"m{i}")) for i in range(3)]
    wait_notifications(server, bob, 3)
    page = notifications(server, bob, "?limit=2")
    assert [n["event"]["event_id"] for n in page["notifications"]] == sent[::-1][:2]
    rest = notifications(server, bob, f"?limit=1&from={page['next_token']}")
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [sent[0]]
    # then the invite, then nothing
    invite = notifications(server, bob, f"?from={rest['next_token']}")
    assert [n["event"]["type"] for n in invite["notifications"]] == ["m.room.member"]
    end = notifications(server, bob, f"?from={invite['next_token']}")
    assert end["notifications"] == []
    assert "next_token" not in end


@pytest.mark.parametrize("query", ["?from=abc", "?limit=abc", "?limit=0"])
def test_notifications_bad_parameters(server: RunningServer, query: str) -> None:
    user = fresh_user(server, "badq")
    reply = authed(user, "GET", f"{server.url}{CLIENT}/notifications{query}")
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


def receipt(
    server: RunningServer, session: Session, room_id: str, event_id: str, **body: Any
) -> None:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}"
    reply = authed(session, "POST", url, body)
    assert reply.status == 200, reply.body


def read_flags(server: RunningServer, session: Session) -> dict[str, bool]:
    found = messages_only(notifications(server, session)["notifications"])
    return {n["event"]["event_id"]: n["read"] for n in found}


def test_receipts_clear_counts_per_thread(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    root = send(server, alice, room_id, text("root"))
    in_thread = send(
        server,
        alice,
        room_id,
        text("in thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    later = send(server, alice, room_id, text("main again"))
    wait_notifications(server, bob, 3)
    assert read_flags(server, bob) == {root: False, in_thread: False, later: False}
    # a receipt in the main timeline reads the main timeline only
    receipt(server, bob, room_id, later, thread_id="main")
    assert read_flags(server, bob) == {root: True, in_thread: False, later: True}
    # the thread's own receipt reads the thread
    receipt(server, bob, room_id, in_thread, thread_id=root)
    assert read_flags(server, bob) == {root: True, in_thread: True, later: True}
    # an unthreaded receipt reads every thread up to its event
    receipt(server, carol, room_id, in_thread)
    assert read_flags(server, carol) == {root: True, in_thread: True, later: False}


# -- pushers -------------------------------------------------------------------------------


def pusher_body(url: str, pushkey: str = "key1", **changes: Any) -> dict[str, Any]:
    body = {
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url},
    }
    body.update(changes)
    return body


def pushers_of(server: RunningServer, session: Session) -> list[dict[str, Any]]:
    reply = authed(session, "GET", f"{server.url}{CLIENT}/pushers")
    assert reply.status == 200
    found: list[dict[str, Any]] = reply.json()["pushers"]
    return found


def set_pusher(server: RunningServer, session: Session, body: dict[str, Any]) -> Any:
    return authed(session, "POST", f"{server.url}{CLIENT}/pushers/set", body)


def test_pusher_set_list_update_delete(server: RunningServer, gateway: Gateway) -> None:
    user, other = fresh_user(server, "pusher"), fresh_user(server, "other")
    assert pushers_of(server, user) == []
    body = pusher_body(gateway.url, profile_tag="tag1")
    assert set_pusher(server, user, body).status == 200
    assert pushers_of(server, user) == [
        {
            "app_display_name": "Example",
            "app_id": "org.example.app",
            "data": {"url": gateway.url},
            "device_display_name": "Phone",
            "kind": "http",
            "lang": "en",
            "profile_tag": "tag1",
            "pushkey": "key1",
        }
    ]
    # the same app_id and pushkey replace the pusher
    assert set_pusher(server, user, {**body, "lang": "fr"}).status == 200
    assert [p["lang"] for p in pushers_of(server, user)] == ["fr"]
    # another user taking the pushkey takes it away, unless appending
    assert set_pusher(server, other, {**body, "append": True}).status == 200
    assert len(pushers_of(server, user)) == 1
    assert set_pusher(server, other, body).status == 200
    assert pushers_of(server, user) == []
    assert len(pushers_of(server, other)) == 1
    # kind null deletes
    assert (
        set_pusher(
            server, other, {"kind": None, "app_id": "org.example.app", "pushkey": "key1"}
        ).status
        == 200
    )
    assert pushers_of(server, other) == []


@pytest.mark.parametrize(
    ("changes", "errcode"),
    [
        ({"lang": None}, "M_MISSING_PARAM"),
        ({"data": None}, "M_MISSING_PARAM"),
        ({"app_id": None}, "M_MISSING_PARAM"),
        ({"data": {}}, "M_MISSING_PARAM"),
        ({"data": {"url": "ftp://127.0.0.1/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
        ({"data": {"url": "http://127.0.0.1/notify"}}, "M_INVALID_PARAM"),
        ({"data": {"url": 5}}, "M_BAD_JSON"),
        ({"data": "http://127.0.0.1/_matrix/push/v1/notify"}, "M_BAD_JSON"),
        ({"kind": None}, "M_MISSING_PARAM"),
        ({"pushkey": 5}, "M_BAD_JSON"),
        ({"lang": ["en"]}, "M_BAD_JSON"),
        ({"profile_tag": 5}, "M_BAD_JSON"),
        ({"kind": "email"}, "M_INVALID_PARAM"),
        ({"app_id": "x" * 65}, "M_INVALID_PARAM"),
        ({"pushkey": "x" * 513}, "M_INVALID_PARAM"),
        ({"append": "yes"}, "M_BAD_JSON"),
    ],
)
def test_pusher_errors(
    server: RunningServer, gateway: Gateway, changes: dict[str, Any], errcode: str
) -> None:
    user = fresh_user(server, "perr")
    body = {k: v for k, v in {**pusher_body(gateway.url), **changes}.items() if v is not None}
    reply = set_pusher(server, user, body)
    assert reply.status == 400, reply.body
    assert reply.errcode == errcode
    assert pushers_of(server, user) == []


def test_pusher_deletion_refusals(server: RunningServer, gateway: Gateway) -> None:
    user = fresh_user(server, "pdel")
    body = pusher_body(gateway.url, "kept-key")
    assert set_pusher(server, user, body).status == 200
    key = {"kind": None, "app_id": body["app_id"], "pushkey": body["pushkey"]}
    for changes, errcode in (
        ({"pushkey": 5}, "M_BAD_JSON"),
        ({"app_id": None}, "M_MISSING_PARAM"),
        ({"kind": False}, "M_BAD_JSON"),
    ):
        changed = {k: v for k, v in {**key, **changes}.items() if k not in changes or v is not None}
        reply = set_pusher(server, user, changed)
        assert (reply.status, reply.errcode) == (400, errcode), reply.body
    assert [p["pushkey"] for p in pushers_of(server, user)] == ["kept-key"]
    assert set_pusher(server, user, key).status == 200
    assert pushers_of(server, user) == []


def test_pusher_delivers_to_the_gateway_with_retries(
    server: RunningServer, gateway: Gateway
) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol, name="Push room")
    pushkey = f"bobkey{next(_counter)}"
    assert (
        set_pusher(
            server,
            bob,
            pusher_body(gateway.url, pushkey, data={"url": gateway.url, "extra": "kept"}),
        ).status
        == 200
    )
    gateway.received.clear()
    gateway.fail = 1
    event_id = send(server, alice, room_id, text("ping"))
    # the first attempt fails with a 500; the retry after a second's backoff succeeds
    received = gateway.wait_for(2)
    assert len(received) == 2
    assert received[0] == received[1]
    notification = received[1]["notification"]
    assert notification["event_id"] == event_id
    assert notification["room_id"] == room_id
    assert notification["type"] == "m.room.message"
    assert notification["sender"] == alice.user_id
    assert notification["content"] == text("ping")
    assert notification["room_name"] == "Push room"
    assert notification["counts"] == {"unread": 1}
    (device,) = notification["devices"]
    assert device["app_id"] == "org.example.app"
    assert device["pushkey"] == pushkey
    assert device["data"] == {"extra": "kept"}
    assert device["tweaks"] == {}
    # nothing more for bob's own messages, and carol has no pusher
    send(server, bob, room_id, text("mine"))
    time.sleep(0.5)
    assert len(gateway.received) == 2


def test_event_id_only_pusher(server: RunningServer, gateway: Gateway) -> None:
    alice, bob = fresh_user(server, "alice"), fresh_user(server, "bob")
    room_id = create_room(server, alice, bob)
    pushkey = f"idonly{next(_counter)}"
    data = {"url": gateway.url, "format": "event_id_only"}
    assert set_pusher(server, bob, pusher_body(gateway.url, pushkey, data=data)).status == 200
    gateway.received.clear()
    event_id = send(server, alice, room_id, text("secret"))
    (received,) = gateway.wait_for(1)
    notification = received["notification"]
    assert notification["event_id"] == event_id
    assert notification["room_id"] == room_id
    assert notification["counts"] == {"unread": 1}
    assert "content" not in notification and "sender" not in notification
    assert notification["devices"][0]["tweaks"] == {"sound": "default"}
    assert notification["devices"][0]["data"] == {"format": "event_id_only"}


# -- through /sync ---------------------------------------------------------------------------


def sync(server: RunningServer, session: Session, query: str = "") -> dict[str, Any]:
    reply = authed(session, "GET", f"{server.url}{CLIENT}/sync?timeout=0{query}")
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def room_counts(server: RunningServer, session: Session, room_id: str, query: str = "") -> Any:
    room = sync(server, session, query)["rooms"]["join"][room_id]
    return room["unread_notifications"], room.get("unread_thread_notifications")


PER_THREAD = "&filter=" + quote('{"room": {"timeline": {"unread_thread_notifications": true}}}')


def wait_counts(
    server: RunningServer, session: Session, room_id: str, notifications: int
) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while True:
        counts, _ = room_counts(server, session, room_id)
        if counts["notification_count"] >= notifications or time.monotonic() > deadline:
            result: dict[str, int] = counts
            return result
        time.sleep(0.05)


def test_sync_counts_rise_with_messages_and_clear_with_receipts(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    joined = send(server, alice, room_id, text("welcome"))
    # reading up to here leaves the invite behind
    receipt(server, bob, room_id, joined)
    assert room_counts(server, bob, room_id)[0] == {"notification_count": 0, "highlight_count": 0}
    send(server, alice, room_id, text("one"))
    last = send(server, alice, room_id, text("two", **{"m.mentions": {"user_ids": [bob.user_id]}}))
    assert wait_counts(server, bob, room_id, 2) == {"notification_count": 2, "highlight_count": 1}
    receipt(server, bob, room_id, last)
    assert room_counts(server, bob, room_id)[0] == {"notification_count": 0, "highlight_count": 0}


def test_sync_counts_per_thread(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    root = send(server, alice, room_id, text("root"))
    receipt(server, bob, room_id, root)
    threaded = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    send(server, alice, room_id, text("t1", **threaded))
    in_thread = send(
        server,
        alice,
        room_id,
        text("t2", **threaded, **{"m.mentions": {"user_ids": [bob.user_id]}}),
    )
    send(server, alice, room_id, text("main"))
    wait_counts(server, bob, room_id, 3)
    main, threads = room_counts(server, bob, room_id, PER_THREAD)
    assert main == {"notification_count": 1, "highlight_count": 0}
    assert threads == {root: {"notification_count": 2, "highlight_count": 1}}
    # without the filter flag the room's counts include its threads
    assert room_counts(server, bob, room_id)[0] == {"notification_count": 3, "highlight_count": 1}
    receipt(server, bob, room_id, in_thread, thread_id=root)
    main, threads = room_counts(server, bob, room_id, PER_THREAD)
    assert main == {"notification_count": 1, "highlight_count": 0}
    assert not threads


def test_push_rule_changes_reach_sync(server: RunningServer) -> None:
    user = fresh_user(server, "syncrules")
    first = sync(server, user)
    rules = [e for e in first["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert len(rules) == 1
    assert [r["rule_id"] for r in rules[0]["content"]["global"]["underride"]] == SPEC_UNDERRIDE_IDS
    since = first["next_batch"]
    again = sync(server, user, f"&since={since}")
    assert not [
        e for e in again.get("account_data", {}).get("events", []) if e["type"] == "m.push_rules"
    ]
    url = server.url + RULES + "/global/override/.m.rule.master/enabled"
    assert authed(user, "PUT", url, {"enabled": True}).status == 200
    changed = sync(server, user, f"&since={again['next_batch']}")
    (event,) = [e for e in changed["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert event["content"]["global"]["override"][0]["enabled"] is True


def test_rejected_pushkeys_remove_the_pusher(server: RunningServer, gateway: Gateway) -> None:
    alice, bob = fresh_user(server, "alice"), fresh_user(server, "bob")
    room_id = create_room(server, alice, bob)
    pushkey = f"stale{next(_counter)}"
    assert set_pusher(server, bob, pusher_body(gateway.url, pushkey)).status == 200
    gateway.reject.add(pushkey)
    gateway.received.clear()
    send(server, alice, room_id, text("anyone there?"))
    gateway.wait_for(1)
    deadline = time.monotonic() + 10
    while pushers_of(server, bob) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pushers_of(server, bob) == []
    send(server, alice, room_id, text("gone"))
    time.sleep(0.5)
    assert len(gateway.received) == 1


def test_push_rule_change_wakes_a_waiting_sync(server: RunningServer) -> None:
    user = fresh_user(server, "waiter")
    since = sync(server, user)["next_batch"]
    result: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        url = f"{server.url}{CLIENT}/sync?timeout=8000&since={since}"
        result["body"] = authed(user, "GET", url).json()
        result["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.5)
    url = server.url + RULES + "/global/underride/.m.rule.message/enabled"
    assert authed(user, "PUT", url, {"enabled": False}).status == 200
    waiter.join(15)
    assert result["seconds"] < 5
    events = result["body"]["account_data"]["events"]
    (rules,) = [e for e in events if e["type"] == "m.push_rules"]
    underride = rules["content"]["global"]["underride"]
    assert next(r for r in underride if r["rule_id"] == ".m.rule.message")["enabled"] is False


def test_pushers_admin_api(server: RunningServer, gateway: Gateway) -> None:
    admin = make_admin(server.config_path, f"pushadmin{next(_counter)}")
    user = fresh_user(server, "listed")
    assert set_pusher(server, user, pusher_body(gateway.url, "admin-listed")).status == 200
    base = f"{server.url}/_synapse/admin/v1/users"
    reply = authed(admin, "GET", f"{base}/{quote(user.user_id)}/pushers")
    assert reply.status == 200
    body = reply.json()
    assert body["total"] == 1
    assert body["pushers"] == pushers_of(server, user)
    empty = authed(admin, "GET", f"{base}/{quote(admin.user_id)}/pushers")
    assert empty.json() == {"pushers": [], "total": 0}
    for user_id, status, errcode in [
        ("@someone:elsewhere.example", 400, "M_UNKNOWN"),
        ("@nobody:test.localhost", 404, "M_NOT_FOUND"),
    ]:
        reply = authed(admin, "GET", f"{base}/{quote(user_id)}/pushers")
        assert (reply.status, reply.errcode) == (status, errcode)
    refused = authed(user, "GET", f"{base}/{quote(user.user_id)}/pushers")
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")


def test_deactivation_deletes_pushers(server: RunningServer, gateway: Gateway) -> None:
    admin = make_admin(server.config_path, f"deadmin{next(_counter)}")
    user = fresh_user(server, "leaving")
    assert set_pusher(server, user, pusher_body(gateway.url, "leaving-key")).status == 200
    url = f"{server.url}/_synapse/admin/v1/users/{quote(user.user_id)}/pushers"
    assert authed(admin, "GET", url).json()["total"] == 1
    deactivate = f"{server.url}/_synapse/admin/v1/deactivate/{quote(user.user_id)}"
    assert authed(admin, "POST", deactivate, {}).status == 200
    deadline = time.monotonic() + 10
    while authed(admin, "GET", url).json()["total"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert authed(admin, "GET", url).json() == {"pushers": [], "total": 0}


def test_room_mentions_highlight_only_from_senders_with_the_power(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    everyone = {"m.mentions": {"room": True}}
    # alice created the room (power 100, above notifications.room's default 50); carol has 0
    from_alice = send(server, alice, room_id, text("@room lunch", **everyone))
    from_carol = send(server, carol, room_id, text("@room me too", **everyone))
    found = {n["event"]["event_id"]: n["actions"] for n in wait_notifications(server, bob, 2)}
    assert found[from_alice] == ["notify", {"set_tweak": "highlight"}]
    assert found[from_carol] == ["notify"]


def test_a_sync_woken_by_a_receipt_sees_the_cleared_counts(server: RunningServer) -> None:
    alice, bob, carol = (fresh_user(server, n) for n in ("alice", "bob", "carol"))
    room_id = create_room(server, alice, bob, carol)
    send(server, alice, room_id, text("one"))
    last = send(server, alice, room_id, text("two"))
    wait_counts(server, bob, room_id, 2)
    since = sync(server, bob)["next_batch"]
    result: dict[str, Any] = {}

    def long_poll() -> None:
        url = f"{server.url}{CLIENT}/sync?timeout=8000&since={since}"
        result["body"] = authed(bob, "GET", url).json()

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.5)
    receipt(server, bob, room_id, last)
    waiter.join(15)
    room = result["body"]["rooms"]["join"][room_id]
    assert [e["type"] for e in room["ephemeral"]["events"]] == ["m.receipt"]
    assert room["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
