"""Joins both ways between a Ranvier (SQLite) and a real Synapse over TLS, and messages
both ways afterwards (Synapse's transactions to our PUT /send, ours to Synapse's): a
Ranvier user joins a Synapse room by ID and by alias (make_join, send_join, Synapse's state
and auth chain checked and stored); a Synapse user joins a Ranvier room (our send_join)."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from tests.federation.harness import FederatingServer, register
from tests.federation.replies import has_message, ok, sync_until
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import CLIENT, Session

Server = FederatingServer | SynapsePeer


def say(server: Server, session: Session, room_id: str, body: str) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    ok(server.authed(session, "PUT", path, {"msgtype": "m.text", "body": body}))


def joined(server: Server, session: Session, room_id: str) -> set[str]:
    reply = server.authed(session, "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members")
    return set(ok(reply)["joined"])


def test_a_ranvier_user_joins_a_synapse_room(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    sam = register_on_synapse(synapse, "sam")
    carol = register(ranvier, "carol")
    alias_name = f"syn{secrets.token_hex(3)}"
    body = {"name": "Synapse's room", "preset": "public_chat", "room_alias_name": alias_name}
    room_id = ok(synapse.authed(sam, "POST", CLIENT + "/createRoom", body))["room_id"]
    say(synapse, sam, room_id, "before the join")
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(synapse.server_name)}"
    assert ok(ranvier.authed(carol, "POST", path))["room_id"] == room_id
    # Ranvier holds Synapse's state of the room
    name = ok(ranvier.authed(carol, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.name"))
    assert name["name"] == "Synapse's room"
    assert joined(ranvier, carol, room_id) == {sam.user_id, carol.user_id}
    assert carol.user_id in joined(synapse, sam, room_id)
    # Synapse sends what follows to Ranvier
    say(synapse, sam, room_id, "welcome, carol")
    sync_until(ranvier, carol, has_message(room_id, "welcome, carol"))
    # and Ranvier's to Synapse (the outbound queue), built on Synapse's events
    say(ranvier, carol, room_id, "thanks, sam")
    sync_until(synapse, sam, has_message(room_id, "thanks, sam"))
    # and a second user joins through the alias
    dave = register(ranvier, "dave")
    alias = f"#{alias_name}:{synapse.server_name}"
    assert ok(ranvier.authed(dave, "POST", f"{CLIENT}/join/{quote(alias)}"))["room_id"] == room_id
    assert dave.user_id in joined(ranvier, dave, room_id)


def test_a_synapse_user_joins_a_ranvier_room(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    erin = register(ranvier, "erin")
    body = {"name": "Ranvier's room", "topic": "ours", "preset": "public_chat"}
    room_id = ok(ranvier.authed(erin, "POST", CLIENT + "/createRoom", body))["room_id"]
    say(ranvier, erin, room_id, "before sid came")
    sid = register_on_synapse(synapse, "sid")
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(ranvier.server_name)}"
    assert ok(synapse.authed(sid, "POST", path))["room_id"] == room_id
    # Synapse accepted our send_join answer: it holds the room's state
    topic = ok(synapse.authed(sid, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic"))
    assert topic["topic"] == "ours"
    assert joined(ranvier, erin, room_id) == {erin.user_id, sid.user_id}
    # Synapse's transaction with sid's message reaches erin
    say(synapse, sid, room_id, "hello from synapse")
    sync_until(ranvier, erin, has_message(room_id, "hello from synapse"))
    say(ranvier, erin, room_id, "hello from ranvier")
    sync_until(synapse, sid, has_message(room_id, "hello from ranvier"))
