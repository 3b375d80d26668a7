"""Typing and read receipts both ways between a Ranvier (SQLite) and a real Synapse over
TLS, in a room on Synapse a Ranvier user joined: each side's /sync shows the other's user
typing, then stopping, and reading (a threaded receipt keeps its thread_id)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ephemeral, ok, sync_until, typists_are
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import CLIENT, Session

Server = FederatingServer | SynapsePeer


def receipt_of(
    response: dict[str, Any], room_id: str, event_id: str, user_id: str
) -> dict[str, Any] | None:
    for event in ephemeral(response, room_id, "m.receipt"):
        data = event["content"].get(event_id, {}).get("m.read", {}).get(user_id)
        if data is not None:
            found: dict[str, Any] = data
            return found
    return None


def has_receipt(room_id: str, event_id: str, user_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda response: receipt_of(response, room_id, event_id, user_id) is not None


def has_event(room_id: str, event_id: str) -> Callable[[dict[str, Any]], bool]:
    def found(response: dict[str, Any]) -> bool:
        room = response.get("rooms", {}).get("join", {}).get(room_id)
        return room is not None and any(
            e["event_id"] == event_id for e in room["timeline"]["events"]
        )

    return found


def set_typing(server: Server, user: Session, room_id: str, typing: bool) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/typing/{quote(user.user_id)}"
    ok(server.authed(user, "PUT", path, {"typing": typing, "timeout": 30000}))


def say(server: Server, user: Session, room_id: str, body: str) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    event_id: str = ok(server.authed(user, "PUT", path, {"msgtype": "m.text", "body": body}))[
        "event_id"
    ]
    return event_id


def read(server: Server, user: Session, room_id: str, event_id: str, **body: Any) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}"
    ok(server.authed(user, "POST", path, body))


@pytest.fixture(scope="module")
def room(ranvier: FederatingServer, synapse: SynapsePeer) -> tuple[Session, Session, str]:
    """sam of Synapse, carol of Ranvier, and sam's room on Synapse that carol joined."""
    sam = register_on_synapse(synapse, f"sam{secrets.token_hex(3)}")
    carol = register(ranvier, f"carol{secrets.token_hex(3)}")
    body = {"preset": "public_chat"}
    room_id: str = ok(synapse.authed(sam, "POST", CLIENT + "/createRoom", body))["room_id"]
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(synapse.server_name)}"
    ok(ranvier.authed(carol, "POST", path, {}))
    return sam, carol, room_id


def test_typing_both_ways_with_synapse(
    ranvier: FederatingServer, synapse: SynapsePeer, room: tuple[Session, Session, str]
) -> None:
    sam, carol, room_id = room
    stopped = typists_are(room_id, [])
    set_typing(ranvier, carol, room_id, True)
    shown = sync_until(synapse, sam, typists_are(room_id, [carol.user_id]))
    set_typing(ranvier, carol, room_id, False)
    sync_until(synapse, sam, stopped, since=shown["next_batch"])

    set_typing(synapse, sam, room_id, True)
    shown = sync_until(ranvier, carol, typists_are(room_id, [sam.user_id]))
    set_typing(synapse, sam, room_id, False)
    sync_until(ranvier, carol, stopped, since=shown["next_batch"])


def test_receipts_both_ways_with_synapse(
    ranvier: FederatingServer, synapse: SynapsePeer, room: tuple[Session, Session, str]
) -> None:
    sam, carol, room_id = room
    first = say(synapse, sam, room_id, "read me")
    sync_until(ranvier, carol, has_event(room_id, first))
    read(ranvier, carol, room_id, first)
    response = sync_until(synapse, sam, has_receipt(room_id, first, carol.user_id))
    data = receipt_of(response, room_id, first, carol.user_id)
    assert data is not None and isinstance(data["ts"], int)

    second = say(ranvier, carol, room_id, "and mine")
    sync_until(synapse, sam, has_event(room_id, second))
    read(synapse, sam, room_id, second)
    sync_until(ranvier, carol, has_receipt(room_id, second, sam.user_id))

    # threaded receipts keep their thread both ways
    read(ranvier, carol, room_id, second, thread_id="main")
    response = sync_until(synapse, sam, has_receipt(room_id, second, carol.user_id))
    data = receipt_of(response, room_id, second, carol.user_id)
    assert data is not None and data.get("thread_id") == "main"
    third = say(ranvier, carol, room_id, "one more")
    sync_until(synapse, sam, has_event(room_id, third))
    read(synapse, sam, room_id, third, thread_id="main")
    response = sync_until(ranvier, carol, has_receipt(room_id, third, sam.user_id))
    data = receipt_of(response, room_id, third, sam.user_id)
    assert data is not None and data.get("thread_id") == "main"
