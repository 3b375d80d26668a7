"""Typing, receipts and presence between Ranvier and a fake server (fake_server.py), on
both engines: the fake joins its user mallory to a room of ours, where bob of a second
Ranvier server is joined too.

What we send it: alice's typing, public receipt and presence reach the fake in the spec's
EDU shapes (SyTest's "Outbound federation sends receipts"), her private receipt never.

What we drop: EDUs about users that are not the fake's own (bob, our alice), about its user
who is not in the room, about a room it is not in, from a server the room's ACL denies,
and malformed ones, each in the same transaction ahead of a good one. The transaction is
accepted; the local client sees the good EDU and never the others."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.federation.conftest import ServerPair, federating_pair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import ephemeral, ok, sync_until
from tests.integration.matrix import CLIENT, Session

FED = "/_matrix/federation"

# every response fresh: the tests look at all of them for what must never show, and a
# repeated initial sync would otherwise be answered from before
two_servers = federating_pair(caches={"sync_response_cache_duration": 0})


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


@dataclass(frozen=True)
class Scene:
    server: FederatingServer
    alice: Session
    room_id: str
    # a room of alice's the fake is not in
    other_room_id: str
    # bob, of the other Ranvier server, joined to room_id
    bob: str
    mallory: str
    event_id: str


def fake_join(fake: FakeServer, server: FederatingServer, room_id: str, user_id: str) -> None:
    reply = fake.request(server, "GET", f"{FED}/v1/make_join/{room_id}/{quote(user_id)}?ver=10")
    assert reply.status == 200, reply.body
    template = reply.json()
    event = fake.sign(template["event"], KNOWN_ROOM_VERSIONS[template["room_version"]])
    reply = fake.request(server, "PUT", f"{FED}/v2/send_join/{room_id}/{event.event_id}", event.pdu)
    assert reply.status == 200, reply.body


def joined_members(server: FederatingServer, user: Session, room_id: str) -> set[str]:
    reply = server.authed(user, "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members")
    return set(ok(reply)["joined"])


_scenes: dict[str, Scene] = {}


@pytest.fixture(params=["first", "second"])
def scene(request: pytest.FixtureRequest, two_servers: ServerPair, fake: FakeServer) -> Scene:
    if request.param not in _scenes:
        server, peer = (
            (two_servers.first, two_servers.second)
            if request.param == "first"
            else (two_servers.second, two_servers.first)
        )
        alice = register(server, f"alice{secrets.token_hex(3)}")
        body = {"preset": "public_chat", "room_version": "10"}
        room_id = ok(server.authed(alice, "POST", CLIENT + "/createRoom", body))["room_id"]
        other_room_id = ok(server.authed(alice, "POST", CLIENT + "/createRoom", body))["room_id"]
        bob = register(peer, f"bob{secrets.token_hex(3)}")
        path = f"{CLIENT}/join/{quote(room_id)}?server_name={server.server_name}"
        ok(peer.authed(bob, "POST", path, {}))
        mallory = fake.user(f"mallory{secrets.token_hex(3)}")
        fake_join(fake, server, room_id, mallory)
        assert {alice.user_id, bob.user_id, mallory} <= joined_members(server, alice, room_id)
        path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{secrets.token_hex(4)}"
        event_id = ok(server.authed(alice, "PUT", path, {"msgtype": "m.text", "body": "hi"}))[
            "event_id"
        ]
        _scenes[request.param] = Scene(
            server, alice, room_id, other_room_id, bob.user_id, mallory, event_id
        )
    return _scenes[request.param]


def send_edus(fake: FakeServer, scene: Scene, edus: list[dict[str, Any]]) -> None:
    reply = fake.send_transaction(scene.server, secrets.token_hex(8), [], edus)
    # the EDUs it drops fail nothing: the transaction is answered as usual
    assert ok(reply) == {"pdus": {}}


def watch(
    scene: Scene, found: Callable[[dict[str, Any]], bool], since: str | None = None
) -> list[dict[str, Any]]:
    """alice's sync responses up to the first for which `found` holds."""
    seen: list[dict[str, Any]] = []

    def record(response: dict[str, Any]) -> bool:
        seen.append(response)
        return found(response)

    sync_until(scene.server, scene.alice, record, since=since)
    return seen


def typing(room_id: str, user_id: str, is_typing: Any = True) -> dict[str, Any]:
    content = {"room_id": room_id, "user_id": user_id, "typing": is_typing}
    return {"edu_type": "m.typing", "content": content}


def test_typing_of_others_users_non_members_and_other_rooms_is_dropped(
    fake: FakeServer, scene: Scene
) -> None:
    nobody = fake.user(f"nobody{secrets.token_hex(3)}")
    send_edus(
        fake,
        scene,
        [
            typing(scene.room_id, scene.bob),
            typing(scene.room_id, scene.alice.user_id),
            typing(scene.room_id, nobody),
            typing(scene.other_room_id, scene.mallory),
            typing(scene.room_id, scene.mallory, is_typing="yes"),
            {"edu_type": "m.typing", "content": {"user_id": scene.mallory, "typing": True}},
            typing(scene.room_id, scene.mallory),
        ],
    )

    def mallory_types(response: dict[str, Any]) -> bool:
        shown = ephemeral(response, scene.room_id, "m.typing")
        return bool(shown) and scene.mallory in shown[-1]["content"]["user_ids"]

    seen = watch(scene, mallory_types)
    for response in seen:
        for event in ephemeral(response, scene.room_id, "m.typing"):
            assert event["content"]["user_ids"] == [scene.mallory], response
        assert scene.other_room_id not in response.get("rooms", {}).get("join", {}) or not (
            ephemeral(response, scene.other_room_id, "m.typing")
        ), response
    # and it stops when the fake says so
    send_edus(fake, scene, [typing(scene.room_id, scene.mallory, is_typing=False)])

    def nobody_types(response: dict[str, Any]) -> bool:
        shown = ephemeral(response, scene.room_id, "m.typing")
        return bool(shown) and shown[-1]["content"]["user_ids"] == []

    watch(scene, nobody_types, since=seen[-1]["next_batch"])


def receipts(room_id: str, by_type: dict[str, Any]) -> dict[str, Any]:
    return {"edu_type": "m.receipt", "content": {room_id: by_type}}


def read(event_id: str, ts: int = 1_700_000_000_000) -> dict[str, Any]:
    return {"event_ids": [event_id], "data": {"ts": ts}}


def test_receipts_of_others_users_and_non_members_are_dropped(
    fake: FakeServer, scene: Scene
) -> None:
    nobody = fake.user(f"nobody{secrets.token_hex(3)}")
    event_id = scene.event_id
    send_edus(
        fake,
        scene,
        [
            receipts(
                scene.room_id,
                {
                    "m.read": {
                        scene.bob: read(event_id),
                        scene.alice.user_id: read(event_id),
                        nobody: read(event_id),
                        scene.mallory: {"event_ids": "not a list"},
                    },
                    "m.read.private": {scene.mallory: read(event_id)},
                },
            ),
            receipts(scene.other_room_id, {"m.read": {scene.mallory: read(event_id)}}),
            receipts(scene.room_id, {"m.read": {scene.mallory: read(event_id, ts=42)}}),
        ],
    )

    def mallory_read(response: dict[str, Any]) -> bool:
        return any(
            scene.mallory in event["content"].get(event_id, {}).get("m.read", {})
            for event in ephemeral(response, scene.room_id, "m.receipt")
        )

    seen = watch(scene, mallory_read)
    for response in seen:
        for event in ephemeral(response, scene.room_id, "m.receipt"):
            for by_type in event["content"].values():
                assert set(by_type) == {"m.read"}, response
                readers = set(by_type["m.read"])
                assert readers.isdisjoint({scene.bob, nobody}), response
                # alice's own receipt is hers to send, not the fake's
                assert by_type["m.read"].get(scene.alice.user_id, {}).get("ts") != (
                    1_700_000_000_000
                ), response
        assert not ephemeral(response, scene.other_room_id, "m.receipt"), response
    shown = [
        event["content"][event_id]["m.read"][scene.mallory]
        for event in ephemeral(seen[-1], scene.room_id, "m.receipt")
        if scene.mallory in event["content"].get(event_id, {}).get("m.read", {})
    ]
    assert shown == [{"ts": 42}]


def test_receipts_with_ids_longer_than_the_spec_allows_are_dropped(
    fake: FakeServer, scene: Scene
) -> None:
    path = f"{CLIENT}/rooms/{quote(scene.room_id)}/send/m.room.message/{secrets.token_hex(4)}"
    fresh = ok(scene.server.authed(scene.alice, "PUT", path, {"msgtype": "m.text", "body": "."}))[
        "event_id"
    ]
    too_long = "$" + "e" * 300
    marker = f"marker {secrets.token_hex(2)}"
    send_edus(
        fake,
        scene,
        [
            receipts(scene.room_id, {"m.read": {scene.mallory: read(too_long)}}),
            receipts(
                scene.room_id,
                {
                    "m.read": {
                        scene.mallory: {
                            "event_ids": [fresh],
                            "data": {"ts": 7, "thread_id": "$" + "t" * 300},
                        }
                    }
                },
            ),
            presence({"user_id": scene.mallory, "presence": "online", "status_msg": marker}),
        ],
    )
    watch(scene, shows_status(scene.mallory, marker))
    # every receipt of the room, as an initial sync gives them
    everything = ok(scene.server.authed(scene.alice, "GET", CLIENT + "/sync?timeout=0"))
    for event in ephemeral(everything, scene.room_id, "m.receipt"):
        assert too_long not in event["content"], everything
        assert scene.mallory not in event["content"].get(fresh, {}).get("m.read", {}), everything


def shows_status(user_id: str, status_msg: str) -> Callable[[dict[str, Any]], bool]:
    def found(response: dict[str, Any]) -> bool:
        return any(
            event["sender"] == user_id and event["content"].get("status_msg") == status_msg
            for event in response.get("presence", {}).get("events", [])
        )

    return found


def presence(*items: dict[str, Any]) -> dict[str, Any]:
    return {"edu_type": "m.presence", "content": {"push": list(items)}}


def test_presence_of_others_users_is_dropped(fake: FakeServer, scene: Scene) -> None:
    forged = f"forged {secrets.token_hex(2)}"
    real = f"real {secrets.token_hex(2)}"
    send_edus(
        fake,
        scene,
        [
            presence(
                {"user_id": scene.alice.user_id, "presence": "unavailable", "status_msg": forged},
                {"user_id": scene.bob, "presence": "online", "status_msg": forged},
                {"user_id": scene.mallory, "presence": "asleep", "status_msg": forged},
                {"presence": "online", "status_msg": forged},
            ),
            {"edu_type": "m.presence", "content": {"push": "not a list"}},
            presence(
                {
                    "user_id": scene.mallory,
                    "presence": "online",
                    "last_active_ago": 1000,
                    "currently_active": True,
                    "status_msg": real,
                }
            ),
        ],
    )

    def mallory_online(response: dict[str, Any]) -> bool:
        return any(
            event["sender"] == scene.mallory and event["content"].get("status_msg") == real
            for event in response.get("presence", {}).get("events", [])
        )

    seen = watch(scene, mallory_online)
    for response in seen:
        for event in response.get("presence", {}).get("events", []):
            assert event["content"].get("status_msg") != forged, response
    mallory = next(
        event["content"]
        for event in seen[-1]["presence"]["events"]
        if event["sender"] == scene.mallory
    )
    assert mallory["presence"] == "online" and mallory["currently_active"] is True
    assert mallory["last_active_ago"] >= 1000
    status_path = f"{CLIENT}/presence/{quote(scene.mallory)}/status"
    status = ok(scene.server.authed(scene.alice, "GET", status_path))
    assert status["presence"] == "online" and status["status_msg"] == real
    for user_id in (scene.alice.user_id, scene.bob):
        path = f"{CLIENT}/presence/{quote(user_id)}/status"
        assert ok(scene.server.authed(scene.alice, "GET", path)).get("status_msg") != forged


def set_acl(scene: Scene, content: dict[str, Any]) -> None:
    path = f"{CLIENT}/rooms/{quote(scene.room_id)}/state/m.room.server_acl/"
    ok(scene.server.authed(scene.alice, "PUT", path, content))


def test_typing_and_receipts_from_a_server_the_acl_denies_are_dropped(
    fake: FakeServer, scene: Scene
) -> None:
    path = f"{CLIENT}/rooms/{quote(scene.room_id)}/send/m.room.message/{secrets.token_hex(4)}"
    unread = ok(scene.server.authed(scene.alice, "PUT", path, {"msgtype": "m.text", "body": "?"}))[
        "event_id"
    ]
    # every test server is "localhost": the ACL denies the fake (and the other Ranvier)
    set_acl(scene, {"allow": ["*"], "deny": ["localhost"], "allow_ip_literals": True})
    try:
        send_edus(
            fake,
            scene,
            [
                typing(scene.room_id, scene.mallory),
                receipts(scene.room_id, {"m.read": {scene.mallory: read(unread)}}),
            ],
        )
    finally:
        set_acl(scene, {"allow": ["*"], "allow_ip_literals": True})
    # let in again, the fake's next word counts; the denied ones never showed
    marker = f"marker {secrets.token_hex(2)}"
    send_edus(
        fake,
        scene,
        [
            presence(
                {"user_id": scene.mallory, "presence": "online", "status_msg": marker},
            )
        ],
    )

    def marker_shown(response: dict[str, Any]) -> bool:
        return any(
            event["sender"] == scene.mallory and event["content"].get("status_msg") == marker
            for event in response.get("presence", {}).get("events", [])
        )

    for response in watch(scene, marker_shown):
        for event in ephemeral(response, scene.room_id, "m.typing"):
            assert scene.mallory not in event["content"]["user_ids"], response
    # all receipts of the room, as an initial sync gives them
    everything = ok(scene.server.authed(scene.alice, "GET", CLIENT + "/sync?timeout=0"))
    for event in ephemeral(everything, scene.room_id, "m.receipt"):
        assert unread not in event["content"], everything


def edus_sent(fake: FakeServer, origin: str) -> list[dict[str, Any]]:
    """Every EDU `origin` has put to the fake so far, in order."""
    return [
        edu
        for request in list(fake.received)
        if request.method == "PUT"
        and request.path.startswith(f"{FED}/v1/send/")
        and request.body.get("origin") == origin
        for edu in request.body.get("edus", [])
    ]


def wait_for_edu(
    fake: FakeServer, origin: str, found: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        for edu in edus_sent(fake, origin):
            if found(edu):
                return edu
        assert time.monotonic() < deadline, edus_sent(fake, origin)
        time.sleep(0.05)


def test_our_typing_receipts_and_presence_reach_the_fake_in_the_spec_shapes(
    fake: FakeServer, scene: Scene
) -> None:
    server, alice, room_id = scene.server, scene.alice, scene.room_id
    origin = server.server_name
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/"
    first = ok(
        server.authed(alice, "PUT", path + secrets.token_hex(4), {"msgtype": "m.text", "body": "1"})
    )["event_id"]
    second = ok(
        server.authed(alice, "PUT", path + secrets.token_hex(4), {"msgtype": "m.text", "body": "2"})
    )["event_id"]
    receipt = f"{CLIENT}/rooms/{quote(room_id)}/receipt"
    ok(server.authed(alice, "POST", f"{receipt}/m.read.private/{quote(first)}", {}))
    ok(server.authed(alice, "POST", f"{receipt}/m.read/{quote(second)}", {"thread_id": "main"}))
    typing_path = f"{CLIENT}/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}"
    ok(server.authed(alice, "PUT", typing_path, {"typing": True, "timeout": 10000}))
    status = f"here {secrets.token_hex(2)}"
    presence_path = f"{CLIENT}/presence/{quote(alice.user_id)}/status"
    ok(server.authed(alice, "PUT", presence_path, {"presence": "online", "status_msg": status}))

    def alice_read(edu: dict[str, Any]) -> bool:
        return edu["edu_type"] == "m.receipt" and alice.user_id in edu["content"].get(
            room_id, {}
        ).get("m.read", {})

    read = wait_for_edu(fake, origin, alice_read)["content"][room_id]["m.read"][alice.user_id]
    assert read["event_ids"] == [second]
    assert set(read["data"]) == {"ts", "thread_id"} and read["data"]["thread_id"] == "main"
    assert isinstance(read["data"]["ts"], int)

    typing_edu = wait_for_edu(
        fake,
        origin,
        lambda edu: (
            edu["edu_type"] == "m.typing" and edu["content"].get("user_id") == alice.user_id
        ),
    )
    assert typing_edu["content"] == {"room_id": room_id, "user_id": alice.user_id, "typing": True}

    def alice_presence(edu: dict[str, Any]) -> bool:
        return edu["edu_type"] == "m.presence" and any(
            item["user_id"] == alice.user_id and item.get("status_msg") == status
            for item in edu["content"]["push"]
        )

    pushed = wait_for_edu(fake, origin, alice_presence)["content"]["push"]
    item = next(i for i in pushed if i["user_id"] == alice.user_id)
    assert item["presence"] == "online" and item["currently_active"] is True
    assert isinstance(item["last_active_ago"], int) and item["last_active_ago"] >= 0

    # the private receipt never left
    for edu in edus_sent(fake, origin):
        if edu["edu_type"] == "m.receipt":
            for by_type in edu["content"].values():
                assert set(by_type) == {"m.read"}, edu
                assert by_type["m.read"].get(alice.user_id, {}).get("event_ids") != [first], edu
    ok(server.authed(alice, "PUT", typing_path, {"typing": False}))
    wait_for_edu(
        fake,
        origin,
        lambda edu: (
            edu["edu_type"] == "m.typing"
            and edu["content"] == {"room_id": room_id, "user_id": alice.user_id, "typing": False}
        ),
    )


def test_members_presence_goes_to_a_server_new_to_the_room_only(
    fake: FakeServer, scene: Scene
) -> None:
    server, alice = scene.server, scene.alice
    origin = server.server_name
    # first, as joining it tells the servers sharing a room with alice of her presence
    body = {"preset": "public_chat", "room_version": "10"}
    new_room = ok(server.authed(alice, "POST", CLIENT + "/createRoom", body))["room_id"]
    status = f"back {secrets.token_hex(2)}"
    presence_path = f"{CLIENT}/presence/{quote(alice.user_id)}/status"
    ok(server.authed(alice, "PUT", presence_path, {"presence": "online", "status_msg": status}))

    def alice_presence(edu: dict[str, Any]) -> bool:
        return edu["edu_type"] == "m.presence" and any(
            item["user_id"] == alice.user_id and item.get("status_msg") == status
            for item in edu["content"]["push"]
        )

    # alice shares scene's room with the fake: her change reached it
    wait_for_edu(fake, origin, alice_presence)
    # a second user of the fake joins that room: the fake was there, nothing is said again
    before = len(edus_sent(fake, origin))
    fake_join(fake, server, scene.room_id, fake.user(f"second{secrets.token_hex(3)}"))
    typing_path = f"{CLIENT}/rooms/{quote(scene.room_id)}/typing/{quote(alice.user_id)}"
    ok(server.authed(alice, "PUT", typing_path, {"typing": True, "timeout": 1000}))
    # EDUs leave in the order they were asked for: a presence said again would come first
    since_join = wait_for_edus_after(fake, origin, before, "m.typing")
    typing_at = next(i for i, edu in enumerate(since_join) if edu["edu_type"] == "m.typing")
    assert not any(alice_presence(edu) for edu in since_join[:typing_at]), since_join

    # a room the fake is new to: when its user joins, it hears of alice
    before = len(edus_sent(fake, origin))
    fake_join(fake, server, new_room, fake.user(f"third{secrets.token_hex(3)}"))
    since_join = wait_for_edus_after(fake, origin, before, "m.presence")
    assert any(alice_presence(edu) for edu in since_join), since_join


def wait_for_edus_after(
    fake: FakeServer, origin: str, before: int, edu_type: str
) -> list[dict[str, Any]]:
    """The EDUs `origin` sent after the first `before`, once one of them is of `edu_type`."""
    deadline = time.monotonic() + 30
    while True:
        after = edus_sent(fake, origin)[before:]
        if any(edu["edu_type"] == edu_type for edu in after):
            return after
        assert time.monotonic() < deadline, after
        time.sleep(0.05)
