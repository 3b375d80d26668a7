"""Format validation of incoming PDUs."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.protocol.canonical_json import encode_canonical_json
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, V1, V3, V5, V6, V10, V11, V12
from ranvier.protocol.validation import MAX_PDU_SIZE, PDUValidationError, validate_pdu


def pdu_for(version: Any, **changes: Any) -> dict[str, Any]:
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": "!r:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "hi"},
        "depth": 3,
        "origin_server_ts": 1700000000000,
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {"example.org": {"ed25519:1": "c2ln"}},
        "unsigned": {"age": 10},
    }
    if version.event_format.name == "V1":
        pdu["event_id"] = "$abc:example.org"
        pdu["prev_events"] = [["$p:example.org", {"sha256": "aGFzaA"}]]
        pdu["auth_events"] = [["$a:example.org", {"sha256": "aGFzaA"}]]
    else:
        pdu["prev_events"] = ["$prev"]
        pdu["auth_events"] = ["$auth"]
    if version.room_id_from_create_event:
        pdu["room_id"] = "!hashOfTheCreateEvent"
    for key, value in changes.items():
        if value is DELETE:
            pdu.pop(key, None)
        else:
            pdu[key] = value
    return pdu


DELETE = object()


@pytest.mark.parametrize("version", KNOWN_ROOM_VERSIONS.values(), ids=lambda v: f"v{v.identifier}")
def test_well_formed_pdus_pass(version: Any) -> None:
    validate_pdu(pdu_for(version), version)
    validate_pdu(pdu_for(version, state_key="", type="m.room.topic"), version)


def test_v12_create_event_without_room_id_passes() -> None:
    create = pdu_for(V12, type="m.room.create", state_key="", room_id=DELETE)
    create["prev_events"] = create["auth_events"] = []
    validate_pdu(create, V12)
    with pytest.raises(PDUValidationError, match="no 'room_id'"):
        validate_pdu(pdu_for(V12, room_id=DELETE), V12)


def _big(n: int) -> str:
    return "x" * n


@pytest.mark.parametrize(
    ("version", "changes", "message"),
    [
        (V10, {"sender": DELETE}, "PDU has no 'sender'"),
        (V10, {"sender": 5}, "'sender' must be a string, not a number"),
        (V10, {"sender": "alice:example.org"}, "'sender' must start with '@'"),
        (V10, {"sender": "@alice"}, "'sender' must end with ':<server name>'"),
        (V10, {"sender": "@" + _big(250) + ":x.org"}, "'sender' is 257 bytes"),
        (V10, {"room_id": "!" + "é" * 127 + ":x"}, "'room_id' is 257 bytes"),
        (V10, {"room_id": "#alias:x"}, "'room_id' must start with '!'"),
        (V10, {"type": None}, "'type' must be a string, not null"),
        (V10, {"type": _big(256)}, "'type' is 256 bytes"),
        (V10, {"state_key": _big(256)}, "'state_key' is 256 bytes"),
        (V10, {"state_key": ["x"]}, "'state_key' must be a string, not an array"),
        (V10, {"content": "x"}, "'content' must be an object, not a string"),
        (V10, {"content": DELETE}, "no 'content'"),
        (V10, {"depth": "3"}, "'depth' must be an integer, not a string"),
        (V10, {"depth": True}, "'depth' must be an integer, not a boolean"),
        (V10, {"depth": -1}, r"depth -1 is outside \[0, 9007199254740991\]"),
        (V10, {"depth": 2**53 - 1 + 1}, "not canonical JSON"),
        (V5, {"depth": 2**63}, r"outside \[0, 9223372036854775807\]"),
        (V10, {"origin_server_ts": 1.5}, "not canonical JSON: non-integer number"),
        (V10, {"origin_server_ts": DELETE}, "no 'origin_server_ts'"),
        (V10, {"hashes": {}}, "'hashes' must have a string 'sha256'"),
        (V10, {"hashes": []}, "'hashes' must be an object, not an array"),
        (V10, {"signatures": {"x": {"ed25519:1": 5}}}, "'signatures' of x must map"),
        (V10, {"signatures": {"x": "sig"}}, "'signatures' of x must map"),
        (V10, {"unsigned": []}, "'unsigned' must be an object"),
        (V10, {"redacts": 5}, "'redacts' must be a string"),
        (V10, {"prev_events": DELETE}, "no 'prev_events'"),
        (V10, {"prev_events": ["$x"] * 21}, "'prev_events' has 21 entries, over the limit of 20"),
        (V10, {"auth_events": ["$x"] * 11}, "'auth_events' has 11 entries, over the limit of 10"),
        (V10, {"auth_events": [["$x", {}]]}, r"'auth_events\[0\]' must be an event ID string"),
        (V3, {"prev_events": ["x"]}, r"'prev_events\[0\]' must be an event ID string"),
        (V1, {"prev_events": ["$x:y"]}, r"'prev_events\[0\]' must be an \[event ID, hashes\]"),
        (V1, {"auth_events": [["$x:y"]]}, r"'auth_events\[0\]' must be an \[event ID, hashes\]"),
        (V1, {"event_id": DELETE}, "no 'event_id'"),
        (V1, {"event_id": "$" + _big(255)}, "'event_id' is 256 bytes"),
        (V6, {"content": {"n": 2**53}}, "not canonical JSON: integer at content.n"),
        (V11, {"content": {"f": 0.5}}, "not canonical JSON: non-integer number at content.f"),
        (V10, {"content": {"k": {1, 2}}}, "not canonical JSON: value of type set at content.k"),
        (V5, {"content": {"k": {1, 2}}}, "cannot be encoded as canonical JSON: value of type set"),
    ],
)
def test_malformed_pdus_are_refused_with_a_precise_message(
    version: Any, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PDUValidationError, match=message) as info:
        validate_pdu(pdu_for(version, **changes), version)
    assert info.value.errcode == "M_BAD_JSON"


def test_legacy_versions_tolerate_non_canonical_numbers() -> None:
    # spec: rooms/fragments/v1-canonical-json - servers MUST NOT strictly enforce
    validate_pdu(pdu_for(V5, content={"pl": 50.5, "big": 2**60}), V5)


def test_v11_redacts_lives_in_content_so_top_level_is_not_checked() -> None:
    validate_pdu(pdu_for(V11, redacts=5), V11)


def test_size_limit_counts_canonical_bytes() -> None:
    pdu = pdu_for(V10)
    pdu["content"] = {"body": ""}
    base = len(encode_canonical_json(pdu))
    pdu["content"]["body"] = "x" * (MAX_PDU_SIZE - base)
    validate_pdu(pdu, V10)
    pdu["content"]["body"] += "x"
    with pytest.raises(PDUValidationError, match=r"65537 bytes .* limit of 65536") as info:
        validate_pdu(pdu, V10)
    assert info.value.errcode == "M_TOO_LARGE"


def test_non_object_is_refused() -> None:
    with pytest.raises(PDUValidationError, match="not a JSON object"):
        validate_pdu(["x"], V10)
