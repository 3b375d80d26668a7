"""Format checks for PDUs received over federation, before any hashing or auth.

spec: server-server-api "Checks performed on receipt of a PDU" step 1 (the event format of
the room version: data/api/server-server/definitions/pdu_v*.yaml), client-server-api
"Size limits", appendices identifier grammar (255-byte limits), rooms/fragments/
v6-canonical-json (strict JSON from room version 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.protocol.canonical_json import (
    CanonicalJSONError,
    check_strict_canonical_json,
    encode_canonical_json,
)
from ranvier.protocol.json_limits import MAX_DEPTH, depth_exceeds
from ranvier.protocol.room_versions import EventFormat, RoomVersion

MAX_PDU_SIZE = 65536
MAX_IDENTIFIER_BYTES = 255
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
# spec: pdu_v1/pdu_v3/pdu_v4 "depth": less than 2^63 - 1; depth_v6.yaml: 2^53 - 1
MAX_DEPTH_V1 = 2**63 - 1
MAX_DEPTH_V6 = 2**53 - 1


class PDUValidationError(ValueError):
    """The PDU does not have the format of its room version; the message says what is wrong.

    `errcode` is the Matrix error code to use if this is reported to a client.
    """

    def __init__(self, message: str, errcode: str = "M_BAD_JSON") -> None:
        super().__init__(message)
        self.errcode = errcode


def max_depth(room_version: RoomVersion) -> int:
    return MAX_DEPTH_V6 if room_version.strict_canonicaljson else MAX_DEPTH_V1


def validate_pdu(pdu: Any, room_version: RoomVersion) -> None:
    """Raise PDUValidationError unless `pdu` is a well-formed PDU of `room_version`."""
    if not isinstance(pdu, Mapping):
        raise PDUValidationError("PDU is not a JSON object")
    # first, as everything below walks the whole PDU; the content may be MAX_DEPTH deep
    if depth_exceeds(pdu, MAX_DEPTH + 1):
        raise PDUValidationError(f"The event's JSON is nested more than {MAX_DEPTH} levels deep")

    # strictness first: every later check may assume plain ints
    if room_version.strict_canonicaljson:
        try:
            check_strict_canonical_json(pdu)
        except CanonicalJSONError as e:
            raise PDUValidationError(f"PDU is not canonical JSON: {e}") from e
    try:
        size = len(encode_canonical_json(pdu))
    except CanonicalJSONError as e:
        raise PDUValidationError(f"PDU cannot be encoded as canonical JSON: {e}") from e
    if size > MAX_PDU_SIZE:
        raise PDUValidationError(
            f"PDU is {size} bytes as canonical JSON, over the limit of {MAX_PDU_SIZE}",
            errcode="M_TOO_LARGE",
        )

    _require_identifier(pdu, "sender", "@")
    _require_type(pdu, "type", str)
    _check_length(pdu, "type")
    _require_type(pdu, "content", Mapping)
    _require_int(pdu, "origin_server_ts")
    _require_int(pdu, "depth")
    depth = pdu["depth"]
    if not 0 <= depth <= max_depth(room_version):
        raise PDUValidationError(
            f"depth {depth} is outside [0, {max_depth(room_version)}] for room version "
            f"{room_version.identifier}"
        )
    _check_hashes(pdu)
    _check_signatures(pdu)

    if "state_key" in pdu:
        _require_type(pdu, "state_key", str)
        _check_length(pdu, "state_key")
    if "unsigned" in pdu:
        _require_type(pdu, "unsigned", Mapping)
    if "redacts" in pdu and not room_version.updated_redaction_rules:
        _require_type(pdu, "redacts", str)

    is_create = pdu.get("type") == "m.room.create" and pdu.get("state_key") == ""
    # spec: rooms/v12 - create events carry no room_id (auth rule 1.2 rejects one that does)
    if not (room_version.room_id_from_create_event and is_create):
        _require_identifier(
            pdu, "room_id", "!", needs_domain=not room_version.room_id_from_create_event
        )
    if room_version.event_format is EventFormat.V1:
        _require_identifier(pdu, "event_id", "$")

    _check_event_refs(pdu, "prev_events", MAX_PREV_EVENTS, room_version)
    _check_event_refs(pdu, "auth_events", MAX_AUTH_EVENTS, room_version)


def _require_type(pdu: Mapping[str, Any], key: str, expected: type) -> None:
    if key not in pdu:
        raise PDUValidationError(f"PDU has no '{key}'")
    if not isinstance(pdu[key], expected):
        raise PDUValidationError(
            f"'{key}' must be {_type_name(expected)}, not {_json_type(pdu[key])}"
        )


def _require_int(pdu: Mapping[str, Any], key: str) -> None:
    _require_type(pdu, key, int)
    if isinstance(pdu[key], bool):
        raise PDUValidationError(f"'{key}' must be an integer, not a boolean")


def _check_length(pdu: Mapping[str, Any], key: str) -> None:
    length = len(pdu[key].encode("utf-8", "surrogatepass"))
    if length > MAX_IDENTIFIER_BYTES:
        raise PDUValidationError(
            f"'{key}' is {length} bytes, over the limit of {MAX_IDENTIFIER_BYTES}"
        )


def _require_identifier(
    pdu: Mapping[str, Any], key: str, sigil: str, *, needs_domain: bool = True
) -> None:
    _require_type(pdu, key, str)
    _check_length(pdu, key)
    value: str = pdu[key]
    if not value.startswith(sigil):
        raise PDUValidationError(f"'{key}' must start with '{sigil}': {value!r}")
    if needs_domain:
        _, sep, domain = value.partition(":")
        if not sep or not domain:
            raise PDUValidationError(f"'{key}' must end with ':<server name>': {value!r}")


def _check_hashes(pdu: Mapping[str, Any]) -> None:
    _require_type(pdu, "hashes", Mapping)
    sha256 = pdu["hashes"].get("sha256")
    if not isinstance(sha256, str):
        raise PDUValidationError("'hashes' must have a string 'sha256'")


def _check_signatures(pdu: Mapping[str, Any]) -> None:
    _require_type(pdu, "signatures", Mapping)
    for server_name, by_key in pdu["signatures"].items():
        if not isinstance(by_key, Mapping) or not all(
            isinstance(signature, str) for signature in by_key.values()
        ):
            raise PDUValidationError(f"'signatures' of {server_name} must map key IDs to strings")


def _check_event_refs(
    pdu: Mapping[str, Any], key: str, limit: int, room_version: RoomVersion
) -> None:
    _require_type(pdu, key, list)
    refs: list[Any] = pdu[key]
    if len(refs) > limit:
        raise PDUValidationError(f"'{key}' has {len(refs)} entries, over the limit of {limit}")
    for index, ref in enumerate(refs):
        if room_version.event_format is EventFormat.V1:
            # spec: pdu_v1 - [event_id, {"sha256": hash}] pairs
            if not (
                isinstance(ref, list)
                and len(ref) == 2
                and isinstance(ref[0], str)
                and ref[0].startswith("$")
                and isinstance(ref[1], Mapping)
            ):
                raise PDUValidationError(f"'{key}[{index}]' must be an [event ID, hashes] pair")
        elif not (isinstance(ref, str) and ref.startswith("$")):
            raise PDUValidationError(f"'{key}[{index}]' must be an event ID string")


def _type_name(expected: type) -> str:
    return {str: "a string", int: "an integer", list: "an array"}.get(expected, "an object")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
