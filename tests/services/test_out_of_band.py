"""The stripped state kept with out-of-band memberships (services/federation/out_of_band.py)."""

from __future__ import annotations

from ranvier.protocol.event_builder import EventTemplate, build_event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.federation.out_of_band import (
    INVITE_ROOM_STATE,
    usable_stripped_state,
    with_stripped_state,
)

NAME = {"type": "m.room.name", "state_key": "", "sender": "@a:x", "content": {"name": "N"}}


def test_only_entries_a_client_can_be_shown_are_kept() -> None:
    malformed = [
        "not an object",
        {"type": "m.room.topic", "state_key": "", "content": "not an object"},
        {"type": 5, "state_key": "", "content": {}},
        {"type": "m.room.topic", "content": {}},
    ]
    assert usable_stripped_state([NAME, *malformed]) == [NAME]


def test_the_state_rides_in_unsigned_and_leaves_the_event_and_its_id_alone() -> None:
    version = KNOWN_ROOM_VERSIONS["10"]
    invite = build_event(
        EventTemplate("m.room.member", "@a:x", {"membership": "invite"}, "!r:x", "@b:y"),
        room_version=version,
        prev_events=[],
        current_state={},
        server_name="x",
        signing_key=ServerSigningKey.generate("k"),
    )
    kept = with_stripped_state(invite, INVITE_ROOM_STATE, [NAME])
    assert kept.event_id == invite.event_id
    assert kept.pdu["unsigned"] == {INVITE_ROOM_STATE: [NAME]}
    assert {k: v for k, v in kept.pdu.items() if k != "unsigned"} == invite.pdu
    assert "unsigned" not in invite.pdu
