"""Issue 19's real-bridge test, Python side: a bridge built on mautrix's AppService (run as its
own process, mautrix_bridge.py) registers its bot and puppets, bridges a room both ways with
masquerading and bridged timestamps, gets typing and read receipts, answers Ranvier's question
about an unknown puppet, gets M_EXCLUSIVE where it should, and loses or duplicates nothing
when it restarts, when Ranvier restarts under it, or when Ranvier restarts while it is down.
Both engines.

The tests share one server, one bridge and one room, and run in file order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import request
from tests.integration.matrix import (
    CLIENT,
    Session,
    authed,
    create_room,
    send_text,
)
from tests.interop.appservice.bridges import (
    SERVER_NAME,
    BridgeProcess,
    Homeserver,
    Registration,
    mautrix_bridge,
)

# long before the bridge sent it, as for a message bridged from another network's history
BRIDGED_TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def registration() -> Registration:
    return Registration("mautrix_interop", "bridge_", receive_ephemeral=True)


@pytest.fixture(scope="module")
def bridge(
    tmp_path_factory: pytest.TempPathFactory, registration: Registration, homeserver: Homeserver
) -> Iterator[BridgeProcess]:
    bridge = mautrix_bridge(registration, homeserver, Path(tmp_path_factory.mktemp("bridge")))
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.kill()


@pytest.fixture(scope="module")
def room_id(bridge: BridgeProcess, human: Session, homeserver: Homeserver) -> str:
    """A room the bridge's bot created with the human invited; the human has joined."""
    room: str = bridge.ok("create_room", invite=[human.user_id])["room_id"]
    url = f"{homeserver.url}{CLIENT}/rooms/{quote(room)}/join"
    reply = authed(human, "POST", url, {})
    assert reply.status == 200, reply.body
    return room


def test_bot_registered_itself_and_acts_as_the_sender(
    bridge: BridgeProcess, registration: Registration
) -> None:
    assert bridge.ok("whoami") == {"user_id": registration.user_id(registration.bot_localpart)}


def test_ping_from_the_bridge_reaches_it_through_ranvier(bridge: BridgeProcess) -> None:
    # mautrix bridges ping themselves through the homeserver at start-up, and refuse to run
    # when the homeserver cannot reach them
    assert bridge.ok("ping", txn_id="interop-ping")["duration_ms"] >= 0
    refused = bridge.do("ping", appservice_id="someone_else")
    assert (refused["status"], refused["errcode"]) == (403, "M_FORBIDDEN"), refused


def test_puppet_joins_and_sends_with_its_bridged_timestamp(
    bridge: BridgeProcess, registration: Registration, human: Session, room_id: str
) -> None:
    puppet = registration.user_id("bridge_x")
    assert bridge.ok("register", localpart="bridge_x") == {"registered": True}
    assert bridge.ok("whoami", localpart="bridge_x") == {"user_id": puppet}
    # the room is invite-only: mautrix has its bot invite the puppet, then joins as the puppet
    assert bridge.ok("join", localpart="bridge_x", room_id=room_id) == {"joined": True}

    sent = bridge.ok(
        "send", localpart="bridge_x", room_id=room_id, body="from the far side", ts=BRIDGED_TS
    )

    url = f"{bridge.homeserver.url}{CLIENT}/rooms/{quote(room_id)}/event/{quote(sent['event_id'])}"
    reply = authed(human, "GET", url)
    assert reply.status == 200, reply.body
    seen = reply.json()
    assert seen["sender"] == puppet
    assert seen["origin_server_ts"] == BRIDGED_TS
    assert seen["content"]["body"] == "from the far side"
    members_url = f"{bridge.homeserver.url}{CLIENT}/rooms/{quote(room_id)}/joined_members"
    joined = authed(human, "GET", members_url).json()["joined"]
    assert set(joined) == {human.user_id, puppet, registration.user_id("bridge_bot")}

    # the puppet takes the name of the person it stands for, in its profile and in the room
    bridge.ok("displayname", localpart="bridge_x", displayname="Xavier (far side)")
    joined = authed(human, "GET", members_url).json()["joined"]
    assert joined[puppet]["display_name"] == "Xavier (far side)"


def test_human_message_reaches_the_bridge_once(
    bridge: BridgeProcess, human: Session, room_id: str
) -> None:
    before = len(bridge.messages(room_id, human.user_id))
    send_text(bridge.homeserver.url, human, room_id, "hello bridge")
    send_text(bridge.homeserver.url, human, room_id, "are you there")

    bridge.wait_until(
        lambda: len(bridge.messages(room_id, human.user_id)) >= before + 2,
        "the human's two messages did not reach the bridge",
    )
    assert bridge.messages(room_id, human.user_id)[before:] == ["hello bridge", "are you there"]


def test_human_typing_and_read_receipt_reach_the_bridge(
    bridge: BridgeProcess, human: Session, room_id: str
) -> None:
    """What mautrix bridges relay as the other network's typing and read markers (MSC2409)."""
    sent = bridge.ok("send", localpart="bridge_x", room_id=room_id, body="read me")
    rooms = f"{bridge.homeserver.url}{CLIENT}/rooms/{quote(room_id)}"
    reply = authed(human, "PUT", f"{rooms}/typing/{quote(human.user_id)}", {"typing": True})
    assert reply.status == 200, reply.body
    bridge.wait_until(
        lambda: any(
            event["type"] == "m.typing"
            and event["room_id"] == room_id
            and human.user_id in event["content"]["user_ids"]
            for event in bridge.events()
        ),
        "the human's typing did not reach the bridge",
    )

    url = f"{rooms}/receipt/m.read/{quote(sent['event_id'])}"
    assert authed(human, "POST", url, {}).status == 200

    def read_by_human(event: dict[str, Any]) -> bool:
        content = event.get("content") or {}
        reads = content.get(sent["event_id"], {}).get("m.read", {})
        return event["type"] == "m.receipt" and human.user_id in reads

    bridge.wait_until(
        lambda: any(read_by_human(event) for event in bridge.events()),
        "the human's read receipt did not reach the bridge",
    )


def test_exclusive_namespace_refused_to_a_human(
    bridge: BridgeProcess, human: Session, homeserver: Homeserver, room_id: str
) -> None:
    body = {"username": "bridge_y", "password": "a password", "auth": {"type": "m.login.dummy"}}
    reply = request("POST", f"{homeserver.url}{CLIENT}/register", body)
    assert (reply.status, reply.errcode) == (400, "M_EXCLUSIVE"), reply.body

    reply = request("GET", f"{homeserver.url}{CLIENT}/register/available?username=bridge_y")
    assert (reply.status, reply.errcode) == (400, "M_EXCLUSIVE"), reply.body

    alias = f"#bridge_room:{SERVER_NAME}"
    url = f"{homeserver.url}{CLIENT}/directory/room/{quote(alias)}"
    reply = authed(human, "PUT", url, {"room_id": room_id})
    assert (reply.status, reply.errcode) == (400, "M_EXCLUSIVE"), reply.body

    # the alias is the bridge's to make
    assert bridge.ok("alias", room_id=room_id, alias_localpart="bridge_room") == {"aliased": True}
    assert authed(human, "GET", url).json()["room_id"] == room_id


def test_bridge_cannot_masquerade_outside_its_namespace(
    bridge: BridgeProcess, human: Session
) -> None:
    refused = bridge.do("whoami", localpart=human.user_id[1:].split(":")[0])
    assert (refused["status"], refused["errcode"]) == (403, "M_FORBIDDEN"), refused


def test_human_opens_a_chat_with_the_bridge_bot(
    bridge: BridgeProcess, registration: Registration, human: Session, homeserver: Homeserver
) -> None:
    """How people log in to most bridges: a direct chat with its bot, which the bridge sees
    invited, joins, and reads commands in."""
    bot = registration.user_id("bridge_bot")
    chat = create_room(homeserver.url, human, preset="trusted_private_chat", invite=[bot])
    bridge.wait_until(
        lambda: any(
            event["type"] == "m.room.member"
            and event["room_id"] == chat
            and (event["state_key"], event["membership"]) == (bot, "invite")
            for event in bridge.events()
        ),
        "the bot's invite did not reach the bridge",
    )
    assert bridge.ok("join", localpart="bridge_bot", room_id=chat) == {"joined": True}

    send_text(homeserver.url, human, chat, "login")
    bridge.wait_until(
        lambda: bridge.messages(chat, human.user_id) == ["login"],
        "the human's command did not reach the bridge",
    )


def test_human_starts_a_chat_with_a_puppet_the_bridge_provides(
    bridge: BridgeProcess, registration: Registration, human: Session, homeserver: Homeserver
) -> None:
    """As a person starts a chat with someone of the other network, with a puppet nobody has
    registered yet: Ranvier asks the bridge about it (GET /_matrix/app/v1/users/{userId}),
    the bridge registers it, and it gets the invite."""
    puppet = registration.user_id("bridge_dm")
    chat = create_room(homeserver.url, human, preset="trusted_private_chat", is_direct=True)
    url = f"{homeserver.url}{CLIENT}/rooms/{quote(chat)}/invite"
    reply = authed(human, "POST", url, {"user_id": puppet})
    assert reply.status == 200, reply.body
    queries = [event for event in bridge.events() if event["type"] == "query_user"]
    assert queries == [{"type": "query_user", "user_id": puppet}]
    bridge.wait_until(
        lambda: any(
            event["type"] == "m.room.member"
            and event["room_id"] == chat
            and (event["state_key"], event["membership"]) == (puppet, "invite")
            for event in bridge.events()
        ),
        "the puppet's invite did not reach the bridge",
    )

    assert bridge.ok("join", localpart="bridge_dm", room_id=chat) == {"joined": True}
    send_text(homeserver.url, human, chat, "hi from this side")
    bridge.wait_until(
        lambda: "hi from this side" in bridge.messages(chat, human.user_id),
        "the human's message in the chat did not reach the bridge",
    )
    members = authed(human, "GET", f"{homeserver.url}{CLIENT}/rooms/{quote(chat)}/joined_members")
    assert set(members.json()["joined"]) == {human.user_id, puppet}


def test_homeserver_restart_under_a_running_bridge_loses_nothing(
    bridge: BridgeProcess, human: Session, room_id: str, homeserver: Homeserver
) -> None:
    # the bridge remembers the transaction IDs it handled since it started, before anything
    # else in this module: a homeserver that numbered its transactions afresh after a restart
    # would have these dropped as repeats
    before = len(bridge.messages(room_id, human.user_id))
    homeserver.stop()
    homeserver.start()
    sent = ["after an upgrade 1", "after an upgrade 2"]
    for text in sent:
        send_text(homeserver.url, human, room_id, text)

    bridge.wait_until(
        lambda: len(bridge.messages(room_id, human.user_id)) >= before + 2,
        "messages sent after Ranvier restarted under a running bridge did not reach it",
    )
    assert bridge.messages(room_id, human.user_id)[before:] == sent


def test_bridge_restart_loses_and_duplicates_nothing(
    bridge: BridgeProcess, human: Session, room_id: str
) -> None:
    before = len(bridge.messages(room_id, human.user_id))
    bridge.stop()
    sent = ["while down 1", "while down 2", "while down 3"]
    for text in sent:
        send_text(bridge.homeserver.url, human, room_id, text)
    assert len(bridge.messages(room_id, human.user_id)) == before

    bridge.start()

    bridge.wait_until(
        lambda: len(bridge.messages(room_id, human.user_id)) >= before + 3,
        "the messages sent while the bridge was down did not reach it after its restart",
    )
    # and a message sent now comes after them, once
    send_text(bridge.homeserver.url, human, room_id, "after the restart")
    bridge.wait_until(
        lambda: "after the restart" in bridge.messages(room_id, human.user_id),
        "a message sent after the bridge's restart did not reach it",
    )
    assert bridge.messages(room_id, human.user_id)[before:] == [*sent, "after the restart"]


def test_homeserver_restart_while_bridge_down_loses_and_duplicates_nothing(
    bridge: BridgeProcess, human: Session, room_id: str, homeserver: Homeserver
) -> None:
    before = len(bridge.messages(room_id, human.user_id))
    bridge.stop()
    sent = ["pending 1", "pending 2"]
    for text in sent:
        send_text(homeserver.url, human, room_id, text)
    homeserver.stop()
    homeserver.start()
    bridge.start()

    bridge.wait_until(
        lambda: len(bridge.messages(room_id, human.user_id)) >= before + 2,
        "the messages pending when Ranvier restarted did not reach the bridge",
    )
    send_text(homeserver.url, human, room_id, "after both restarts")
    bridge.wait_until(
        lambda: "after both restarts" in bridge.messages(room_id, human.user_id),
        "a message sent after both restarts did not reach the bridge",
    )
    assert bridge.messages(room_id, human.user_id)[before:] == [*sent, "after both restarts"]
    # over the whole module, each of the human's messages reached the bridge exactly once
    everything = bridge.messages(room_id, human.user_id)
    assert len(everything) == len(set(everything)) == 11, everything
