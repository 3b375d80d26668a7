"""A room shared by two servers is upgraded (spec client-server "Room Upgrades"): the other
server's member sees the old room end with a tombstone naming the new room, follows it
through the server that upgraded, finds the new room's create event naming its
predecessor, reaches the new room through the moved alias, and talks there. Each way round,
so each engine hosts the upgrade once.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import has_message, ok, sync_until
from tests.integration.matrix import CLIENT, Session


def state(server: FederatingServer, user: Session, room_id: str, event_type: str) -> Any:
    reply = server.authed(user, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/{event_type}/")
    return reply.json() if reply.status == 200 else None


def say(server: FederatingServer, user: Session, room_id: str, body: str) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    ok(server.authed(user, "PUT", path, {"msgtype": "m.text", "body": body}))


@pytest.mark.parametrize("upgrader", ["first", "second"])
def test_the_other_servers_member_follows_an_upgrade(
    two_servers: ServerPair, upgrader: str
) -> None:
    host, other = (
        (two_servers.first, two_servers.second)
        if upgrader == "first"
        else (two_servers.second, two_servers.first)
    )
    tag = secrets.token_hex(3)
    alice = register(host, f"alice{tag}")
    bob = register(other, f"bob{tag}")
    alias = f"#upgraded{tag}:{host.server_name}"
    old = ok(
        host.authed(
            alice,
            "POST",
            CLIENT + "/createRoom",
            {"preset": "public_chat", "room_version": "10", "room_alias_name": f"upgraded{tag}"},
        )
    )["room_id"]
    ok(other.authed(bob, "POST", f"{CLIENT}/join/{quote(alias)}"))
    say(host, alice, old, "before the upgrade")
    sync_until(other, bob, has_message(old, "before the upgrade"))

    new = ok(
        host.authed(alice, "POST", f"{CLIENT}/rooms/{quote(old)}/upgrade", {"new_version": "11"})
    )["replacement_room"]

    # the other server sees the old room end, pointing at the new one
    def tombstoned(response: dict[str, Any]) -> bool:
        timeline = response.get("rooms", {}).get("join", {}).get(old, {}).get("timeline", {})
        return any(
            e["type"] == "m.room.tombstone" and e["content"].get("replacement_room") == new
            for e in timeline.get("events", [])
        )

    sync_until(other, bob, tombstoned)
    assert state(other, bob, old, "m.room.tombstone")["replacement_room"] == new
    # the old room is closed to bob's messages now (power levels raised by the upgrade)
    path = f"{CLIENT}/rooms/{quote(old)}/send/m.room.message/t{secrets.token_hex(4)}"
    closed = other.authed(bob, "PUT", path, {"msgtype": "m.text", "body": "too late"})
    assert (closed.status, closed.errcode) == (403, "M_FORBIDDEN")

    # the moved alias leads to the new room from the other server too
    resolved = ok(other.authed(bob, "GET", f"{CLIENT}/directory/room/{quote(alias)}"))
    assert resolved["room_id"] == new
    ok(other.authed(bob, "POST", f"{CLIENT}/join/{quote(new)}?via={quote(host.server_name)}"))
    create = state(other, bob, new, "m.room.create")
    assert create["predecessor"]["room_id"] == old
    assert create.get("room_version", "1") == "11"
    say(other, bob, new, "after the upgrade")
    sync_until(host, alice, has_message(new, "after the upgrade"))
