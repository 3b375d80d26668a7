"""Issue 19's real-bridge test, Node side: a bridge built on matrix-appservice-bridge
(js/appservice_bridge.mjs, its own process) registers a puppet through its Intent, which joins
a room its bot made with a human and sends into it; the human's messages arrive in the
bridge's onEvent, once each, also those sent while it was down. Both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.matrix import CLIENT, Session, authed, send_text
from tests.interop.appservice.bridges import BridgeProcess, Homeserver, Registration, js_bridge


@pytest.fixture(scope="module")
def registration() -> Registration:
    return Registration("js_interop", "js_")


@pytest.fixture(scope="module")
def bridge(
    tmp_path_factory: pytest.TempPathFactory, registration: Registration, homeserver: Homeserver
) -> Iterator[BridgeProcess]:
    bridge = js_bridge(registration, homeserver, Path(tmp_path_factory.mktemp("bridge")))
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.kill()


def test_puppet_and_human_bridge_a_room_both_ways(
    bridge: BridgeProcess, registration: Registration, human: Session, homeserver: Homeserver
) -> None:
    bot = registration.user_id(registration.bot_localpart)
    puppet = registration.user_id("js_x")
    assert bridge.ok("whoami") == {"user_id": bot}
    room_id = bridge.ok("create_room", invite=[human.user_id])["room_id"]
    reply = authed(human, "POST", f"{homeserver.url}{CLIENT}/rooms/{quote(room_id)}/join", {})
    assert reply.status == 200, reply.body

    assert bridge.ok("register", localpart="js_x") == {"registered": True}
    assert bridge.ok("whoami", localpart="js_x") == {"user_id": puppet}
    assert bridge.ok("join", localpart="js_x", room_id=room_id) == {"joined": True}
    sent = bridge.ok("send", localpart="js_x", room_id=room_id, body="from node")

    url = f"{homeserver.url}{CLIENT}/rooms/{quote(room_id)}/event/{quote(sent['event_id'])}"
    reply = authed(human, "GET", url)
    assert reply.status == 200, reply.body
    assert (reply.json()["sender"], reply.json()["content"]["body"]) == (puppet, "from node")

    send_text(homeserver.url, human, room_id, "hello node")
    send_text(homeserver.url, human, room_id, "still there")
    bridge.wait_until(
        lambda: "still there" in bridge.messages(room_id, human.user_id),
        "the human's messages did not reach the bridge's onEvent",
    )
    assert bridge.messages(room_id, human.user_id) == ["hello node", "still there"]


def test_puppet_outside_the_namespace_is_refused(bridge: BridgeProcess, human: Session) -> None:
    refused = bridge.do("whoami", localpart=human.user_id[1:].split(":")[0])
    assert (refused["status"], refused["errcode"]) == (403, "M_FORBIDDEN"), refused


def test_bridge_restart_loses_and_duplicates_nothing(
    bridge: BridgeProcess, human: Session, homeserver: Homeserver
) -> None:
    room_id = bridge.ok("create_room", invite=[human.user_id])["room_id"]
    reply = authed(human, "POST", f"{homeserver.url}{CLIENT}/rooms/{quote(room_id)}/join", {})
    assert reply.status == 200, reply.body
    bridge.stop()
    sent = ["while node was down 1", "while node was down 2"]
    for text in sent:
        send_text(homeserver.url, human, room_id, text)

    bridge.start()

    bridge.wait_until(
        lambda: len(bridge.messages(room_id, human.user_id)) >= len(sent),
        "the messages sent while the bridge was down did not reach its onEvent",
    )
    send_text(homeserver.url, human, room_id, "node is back")
    bridge.wait_until(
        lambda: "node is back" in bridge.messages(room_id, human.user_id),
        "a message sent after the bridge's restart did not reach its onEvent",
    )
    assert bridge.messages(room_id, human.user_id) == [*sent, "node is back"]
