"""Event IDs per event format, and room IDs of room version 12."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from spec_vectors import REDACTABLE_EVENT_SIGNED

from ranvier.protocol.event_ids import EventIDError, compute_event_id, room_id_from_create_event
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, V1, V2, V3, V4, V6, V11, V12


def _event(**extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "content": {"body": "hello"},
        "depth": 4,
        "origin_server_ts": 1000000,
        "prev_events": ["$a"],
        "auth_events": ["$b"],
        "hashes": {"sha256": "abc"},
        "signatures": {"domain": {"ed25519:1": "sig"}},
        "unsigned": {"age": 3},
        **extra,
    }


def _independent_reference_hash(pdu: dict[str, Any]) -> bytes:
    # a message keeps no content; signatures and unsigned are not hashed
    kept = {k: v for k, v in pdu.items() if k not in ("signatures", "unsigned", "content")}
    kept["content"] = {}
    return hashlib.sha256(
        json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).digest()


@pytest.mark.parametrize("room_version", [V1, V2], ids=["v1", "v2"])
def test_v1_v2_take_the_event_id_from_the_pdu(room_version: Any) -> None:
    assert compute_event_id(REDACTABLE_EVENT_SIGNED, room_version) == "$0:domain"
    with pytest.raises(EventIDError, match="no valid event_id"):
        compute_event_id(_event(), room_version)
    with pytest.raises(EventIDError):
        compute_event_id(_event(event_id="no-sigil"), room_version)


def _find_event_with(chars: str) -> dict[str, Any]:
    for n in range(1000):
        pdu = _event(depth=n)
        if any(c in base64.b64encode(_independent_reference_hash(pdu)).decode() for c in chars):
            return pdu
    raise AssertionError("no such event")


def test_v3_event_id_is_standard_base64_of_the_reference_hash() -> None:
    pdu = _find_event_with("+/")
    expected = "$" + base64.b64encode(_independent_reference_hash(pdu)).decode().rstrip("=")
    assert compute_event_id(pdu, V3) == expected
    assert len(expected) == 44


@pytest.mark.parametrize("room_version", [V4, V6, V11, V12], ids=lambda v: f"v{v.identifier}")
def test_v4_on_event_id_is_url_safe_base64(room_version: Any) -> None:
    pdu = _find_event_with("+/")
    raw = _independent_reference_hash(pdu)
    expected = "$" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert compute_event_id(pdu, room_version) == expected
    assert "+" not in expected and "/" not in expected


def test_event_id_ignores_signatures_unsigned_and_redactable_content() -> None:
    pdu = _event()
    event_id = compute_event_id(pdu, V12)
    changed = copy.deepcopy(pdu)
    changed["signatures"] = {"other": {"ed25519:x": "y"}}
    changed["unsigned"] = {}
    changed["content"] = {"body": "edited"}
    assert compute_event_id(changed, V12) == event_id
    changed["depth"] = 5
    assert compute_event_id(changed, V12) != event_id


def test_v3_and_v4_ids_differ_only_in_alphabet() -> None:
    pdu = _find_event_with("+/")
    v3_id = compute_event_id(pdu, V3)
    assert v3_id != compute_event_id(pdu, V4)
    assert v3_id.translate(str.maketrans("+/", "-_")) == compute_event_id(pdu, V4)
    # versions 4-10 share one redaction outcome for a message, hence one ID
    assert (
        len(
            {
                compute_event_id(pdu, v)
                for v in KNOWN_ROOM_VERSIONS.values()
                if v.identifier in ("4", "5", "6", "7", "8", "9", "10")
            }
        )
        == 1
    )


def test_v12_room_id_is_the_create_event_id_with_a_bang() -> None:
    create = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@creator:domain",
        "content": {"room_version": "12"},
        "depth": 1,
        "origin_server_ts": 1,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
    }
    event_id = compute_event_id(create, V12)
    room_id = room_id_from_create_event(create, V12)
    assert room_id == "!" + event_id[1:]
    assert Event(create, V12, event_id).room_id == room_id
    with pytest.raises(EventIDError, match="does not derive"):
        room_id_from_create_event(create, V11)


def test_v8_join_rules_event_id_covers_the_allow_list() -> None:
    # spec: rooms/v8 "Redactions" keeps `allow`, so the reference hash (taken over the
    # redacted event) depends on it from v8 on, as it does in v9
    allow = [{"type": "m.room_membership", "room_id": "!space:domain"}]
    pdu = _event(
        type="m.room.join_rules",
        state_key="",
        content={"join_rule": "restricted", "allow": allow},
    )
    other = copy.deepcopy(pdu)
    other["content"]["allow"] = [{"type": "m.room_membership", "room_id": "!other:domain"}]
    v7, v8, v9 = (KNOWN_ROOM_VERSIONS[v] for v in ("7", "8", "9"))
    assert compute_event_id(pdu, v7) == compute_event_id(other, v7)
    assert compute_event_id(pdu, v8) != compute_event_id(other, v8)
    assert compute_event_id(pdu, v8) == compute_event_id(pdu, v9)
