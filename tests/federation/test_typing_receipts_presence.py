"""Typing, read receipts and presence between two Ranvier servers (A on SQLite, B on
PostgreSQL), both ways: a user on each server, in a room of the other, sees the other
type, read (public and threaded receipts; a private one never leaves its server) and
come online, in /sync and GET /presence; a new private chat across servers gives both
users each other's presence (SyTest's "New federated private chats get full presence
information")."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ephemeral, ok, sync_until, typists_are
from tests.integration.matrix import CLIENT, Session


@dataclass(frozen=True)
class SharedRoom:
    """A room on `home`, made by `owner`, that `guest` of `away` joined."""

    home: FederatingServer
    owner: Session
    away: FederatingServer
    guest: Session
    room_id: str


def directions(pair: ServerPair) -> list[tuple[FederatingServer, FederatingServer]]:
    return [(pair.first, pair.second), (pair.second, pair.first)]


def share_room(home: FederatingServer, away: FederatingServer, preset: str) -> SharedRoom:
    owner = register(home, f"owner{secrets.token_hex(3)}")
    guest = register(away, f"guest{secrets.token_hex(3)}")
    room_id = ok(home.authed(owner, "POST", CLIENT + "/createRoom", {"preset": preset}))["room_id"]
    if preset == "private_chat":
        invite = {"user_id": guest.user_id}
        ok(home.authed(owner, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", invite))
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={home.server_name}"
    ok(away.authed(guest, "POST", path, {}))
    # the join has reached the room's server
    sync_until(home, owner, has_member(room_id, guest.user_id))
    return SharedRoom(home, owner, away, guest, room_id)


def has_member(room_id: str, user_id: str) -> Callable[[dict[str, Any]], bool]:
    def found(response: dict[str, Any]) -> bool:
        room = response.get("rooms", {}).get("join", {}).get(room_id)
        if room is None:
            return False
        events = [*room["state"]["events"], *room["timeline"]["events"]]
        return any(
            e["type"] == "m.room.member"
            and e.get("state_key") == user_id
            and e["content"].get("membership") == "join"
            for e in events
        )

    return found


def set_typing(server: FederatingServer, user: Session, room_id: str, typing: bool) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/typing/{quote(user.user_id)}"
    ok(server.authed(user, "PUT", path, {"typing": typing, "timeout": 30000}))


def send_message(server: FederatingServer, user: Session, room_id: str, body: str) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{secrets.token_hex(4)}"
    event_id: str = ok(server.authed(user, "PUT", path, {"msgtype": "m.text", "body": body}))[
        "event_id"
    ]
    return event_id


def receipts_in(response: dict[str, Any], room_id: str) -> dict[str, Any]:
    """event_id -> receipt_type -> user_id -> data, merged over the response's m.receipt."""
    merged: dict[str, Any] = {}
    for event in ephemeral(response, room_id, "m.receipt"):
        for event_id, by_type in event["content"].items():
            for receipt_type, by_user in by_type.items():
                merged.setdefault(event_id, {}).setdefault(receipt_type, {}).update(by_user)
    return merged


def has_receipt(
    room_id: str, event_id: str, user_id: str, receipt_type: str = "m.read"
) -> Callable[[dict[str, Any]], bool]:
    def found(response: dict[str, Any]) -> bool:
        return user_id in receipts_in(response, room_id).get(event_id, {}).get(receipt_type, {})

    return found


def watch(
    server: FederatingServer, user: Session, found: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Every sync response up to the first for which `found` holds (incremental from an
    initial one), for asserting what never showed on the way."""
    seen: list[dict[str, Any]] = []

    def record(response: dict[str, Any]) -> bool:
        seen.append(response)
        return found(response)

    sync_until(server, user, record)
    return seen


def test_typing_is_seen_on_the_other_server_and_stops(two_servers: ServerPair) -> None:
    for home, away in directions(two_servers):
        room = share_room(home, away, "public_chat")
        # the guest types in the room of the other server
        set_typing(away, room.guest, room.room_id, True)
        shown = sync_until(home, room.owner, typists_are(room.room_id, [room.guest.user_id]))
        set_typing(away, room.guest, room.room_id, False)
        stopped = typists_are(room.room_id, [])
        sync_until(home, room.owner, stopped, since=shown["next_batch"])
        # and the owner's typing reaches the guest's server
        set_typing(home, room.owner, room.room_id, True)
        shown = sync_until(away, room.guest, typists_are(room.room_id, [room.owner.user_id]))
        set_typing(home, room.owner, room.room_id, False)
        sync_until(away, room.guest, stopped, since=shown["next_batch"])


def test_receipts_are_seen_on_the_other_server_private_ones_never(
    two_servers: ServerPair,
) -> None:
    for home, away in directions(two_servers):
        room = share_room(home, away, "public_chat")
        first = send_message(home, room.owner, room.room_id, "read me")
        sync_until(away, room.guest, has_message_id(room.room_id, first))
        receipt = f"{CLIENT}/rooms/{quote(room.room_id)}/receipt"
        ok(away.authed(room.guest, "POST", f"{receipt}/m.read/{quote(first)}", {}))
        response = sync_until(
            home, room.owner, has_receipt(room.room_id, first, room.guest.user_id)
        )
        data = receipts_in(response, room.room_id)[first]["m.read"][room.guest.user_id]
        assert isinstance(data["ts"], int) and "thread_id" not in data

        # a private receipt stays on the guest's server; a threaded one after it arrives
        second = send_message(home, room.owner, room.room_id, "and me")
        sync_until(away, room.guest, has_message_id(room.room_id, second))
        ok(away.authed(room.guest, "POST", f"{receipt}/m.read.private/{quote(second)}", {}))
        threaded = {"thread_id": "main"}
        ok(away.authed(room.guest, "POST", f"{receipt}/m.read/{quote(second)}", threaded))
        seen = watch(home, room.owner, has_receipt(room.room_id, second, room.guest.user_id))
        data = receipts_in(seen[-1], room.room_id)[second]["m.read"][room.guest.user_id]
        assert data["thread_id"] == "main"
        for response in seen:
            for by_type in receipts_in(response, room.room_id).values():
                assert "m.read.private" not in by_type, response

        # the owner's receipt reaches the guest's server too
        ok(home.authed(room.owner, "POST", f"{receipt}/m.read/{quote(second)}", {}))
        sync_until(away, room.guest, has_receipt(room.room_id, second, room.owner.user_id))


def has_message_id(room_id: str, event_id: str) -> Callable[[dict[str, Any]], bool]:
    def found(response: dict[str, Any]) -> bool:
        room = response.get("rooms", {}).get("join", {}).get(room_id)
        return room is not None and any(
            e["event_id"] == event_id for e in room["timeline"]["events"]
        )

    return found


def presence_of(response: dict[str, Any], user_id: str) -> dict[str, Any] | None:
    for event in response.get("presence", {}).get("events", []):
        if event["sender"] == user_id:
            content: dict[str, Any] = event["content"]
            return content
    return None


def set_presence(server: FederatingServer, user: Session, presence: str, status: str) -> None:
    path = f"{CLIENT}/presence/{quote(user.user_id)}/status"
    ok(server.authed(user, "PUT", path, {"presence": presence, "status_msg": status}))


def shows_status(user_id: str, status_msg: str) -> Callable[[dict[str, Any]], bool]:
    def found(response: dict[str, Any]) -> bool:
        content = presence_of(response, user_id)
        return content is not None and content.get("status_msg") == status_msg

    return found


def poll_status(
    server: FederatingServer, user: Session, of: str, status_msg: str
) -> dict[str, Any]:
    """GET /presence/{of}/status until it says `status_msg`."""
    deadline = time.monotonic() + 30
    while True:
        status: dict[str, Any] = ok(
            server.authed(user, "GET", f"{CLIENT}/presence/{quote(of)}/status")
        )
        if status.get("status_msg") == status_msg:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_presence_is_seen_on_the_other_server(two_servers: ServerPair) -> None:
    for home, away in directions(two_servers):
        room = share_room(home, away, "public_chat")
        status = f"busy {secrets.token_hex(2)}"
        set_presence(away, room.guest, "unavailable", status)

        shown = sync_until(home, room.owner, shows_status(room.guest.user_id, status))
        content = presence_of(shown, room.guest.user_id)
        assert content is not None and content["presence"] == "unavailable"
        got = poll_status(home, room.owner, room.guest.user_id, status)
        assert got["presence"] == "unavailable"

        set_presence(home, room.owner, "online", "here")
        got = poll_status(away, room.guest, room.owner.user_id, "here")
        assert got["presence"] == "online" and got["currently_active"] is True
        assert isinstance(got["last_active_ago"], int)


def collects_presence(
    seen: dict[str, dict[str, Any]], user_ids: set[str]
) -> Callable[[dict[str, Any]], bool]:
    """Gathers into `seen` the presence each response carries, until it has `user_ids`'."""

    def found(response: dict[str, Any]) -> bool:
        for event in response.get("presence", {}).get("events", []):
            seen[event["sender"]] = event["content"]
        return user_ids <= seen.keys()

    return found


@pytest.mark.parametrize("owner_on", ["first", "second"])
def test_new_federated_private_chats_get_full_presence(
    two_servers: ServerPair, owner_on: str
) -> None:
    home, away = (
        (two_servers.first, two_servers.second)
        if owner_on == "first"
        else (two_servers.second, two_servers.first)
    )
    # both online (a sync marks its user online)
    owner = register(home, f"owner{secrets.token_hex(3)}")
    guest = register(away, f"guest{secrets.token_hex(3)}")
    ok(home.authed(owner, "GET", CLIENT + "/sync?timeout=0"))
    ok(away.authed(guest, "GET", CLIENT + "/sync?timeout=0"))
    room_id = ok(home.authed(owner, "POST", CLIENT + "/createRoom", {"preset": "private_chat"}))[
        "room_id"
    ]
    ok(
        home.authed(
            owner, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": guest.user_id}
        )
    )
    ok(
        away.authed(
            guest, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={home.server_name}", {}
        )
    )
    for server, user in ((home, owner), (away, guest)):
        seen: dict[str, dict[str, Any]] = {}
        sync_until(server, user, collects_presence(seen, {owner.user_id, guest.user_id}), 10)
        assert seen[owner.user_id]["presence"] == "online"
        assert seen[guest.user_id]["presence"] == "online"
