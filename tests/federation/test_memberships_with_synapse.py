"""Invites both ways between a Ranvier (SQLite) and a real Synapse over TLS: a Synapse user
invites a Ranvier user, who sees the invite with Synapse's stripped state and rejects it
through Synapse (make_leave, send_leave); a Ranvier user invites a Synapse user, whose
Synapse signs the invite and shows it in its /sync."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.federation.harness import FederatingServer, register
from tests.federation.replies import in_section, ok, sync_until
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import CLIENT, Session

Server = FederatingServer | SynapsePeer


def member(server: Server, session: Session, room_id: str, user_id: str) -> Any:
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
    return ok(server.authed(session, "GET", path))


def test_a_synapse_user_invites_a_ranvier_user_who_rejects(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    sam = register_on_synapse(synapse, "sam")
    carol = register(ranvier, "carol")
    body = {"name": "Synapse's room", "preset": "private_chat"}
    room_id = ok(synapse.authed(sam, "POST", CLIENT + "/createRoom", body))["room_id"]
    invite = {"user_id": carol.user_id}
    ok(synapse.authed(sam, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", invite))
    response = sync_until(ranvier, carol, in_section("invite", room_id))
    shown = response["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert _by_type(shown)["m.room.name"]["content"] == {"name": "Synapse's room"}
    assert shown[-1]["sender"] == sam.user_id
    assert shown[-1]["content"]["membership"] == "invite"

    ok(ranvier.authed(carol, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave"))
    assert member(synapse, sam, room_id, carol.user_id)["membership"] == "leave"
    sync_until(ranvier, carol, in_section("leave", room_id))


def test_a_ranvier_user_invites_a_synapse_user(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    dave = register(ranvier, "dave")
    tess = register_on_synapse(synapse, "tess")
    body = {"name": "Ranvier's room", "room_version": "10"}
    room_id = ok(ranvier.authed(dave, "POST", CLIENT + "/createRoom", body))["room_id"]
    invite = {"user_id": tess.user_id}
    ok(ranvier.authed(dave, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", invite))
    assert member(ranvier, dave, room_id, tess.user_id)["membership"] == "invite"
    response = sync_until(synapse, tess, in_section("invite", room_id))
    shown = response["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert _by_type(shown)["m.room.name"]["content"] == {"name": "Ranvier's room"}
    assert any(
        event["type"] == "m.room.member"
        and event["state_key"] == tess.user_id
        and event["content"]["membership"] == "invite"
        for event in shown
    )
    # tess declines: Synapse leaves through our make_leave and send_leave
    ok(synapse.authed(tess, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", {}))
    assert member(ranvier, dave, room_id, tess.user_id)["membership"] == "leave"


def test_a_synapse_user_knocks_on_a_ranvier_room(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    fay = register(ranvier, "fay")
    vic = register_on_synapse(synapse, "vic")
    body = {
        "name": "Knock at Ranvier",
        "room_version": "10",
        "initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    }
    room_id = ok(ranvier.authed(fay, "POST", CLIENT + "/createRoom", body))["room_id"]
    path = f"{CLIENT}/knock/{quote(room_id)}?server_name={quote(ranvier.server_name)}"
    ok(synapse.authed(vic, "POST", path, {"reason": "hi"}))
    assert member(ranvier, fay, room_id, vic.user_id)["membership"] == "knock"
    response = sync_until(synapse, vic, in_section("knock", room_id))
    shown = response["rooms"]["knock"][room_id]["knock_state"]["events"]
    assert _by_type(shown)["m.room.name"]["content"] == {"name": "Knock at Ranvier"}


def _by_type(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {event["type"]: event for event in events}


def test_a_ranvier_user_knocks_on_a_synapse_room(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    uma = register_on_synapse(synapse, "uma")
    erin = register(ranvier, "erin")
    body = {
        "name": "Knock at Synapse",
        "room_version": "10",
        "initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    }
    room_id = ok(synapse.authed(uma, "POST", CLIENT + "/createRoom", body))["room_id"]
    path = f"{CLIENT}/knock/{quote(room_id)}?server_name={quote(synapse.server_name)}"
    assert ok(ranvier.authed(erin, "POST", path, {"reason": "may I?"})) == {"room_id": room_id}
    assert member(synapse, uma, room_id, erin.user_id)["membership"] == "knock"
    response = sync_until(ranvier, erin, in_section("knock", room_id))
    shown = response["rooms"]["knock"][room_id]["knock_state"]["events"]
    assert _by_type(shown)["m.room.name"]["content"] == {"name": "Knock at Synapse"}
    # uma lets erin in; erin joins through Synapse
    invite = {"user_id": erin.user_id}
    ok(synapse.authed(uma, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", invite))
    sync_until(ranvier, erin, in_section("invite", room_id))
    ok(ranvier.authed(erin, "POST", f"{CLIENT}/join/{quote(room_id)}", {}))
    assert member(synapse, uma, room_id, erin.user_id)["membership"] == "join"
