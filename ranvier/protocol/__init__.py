"""Ranvier's pure Matrix protocol library: no I/O, nothing imported from the rest of ranvier.

The public API of each module is re-exported here; docs/protocol.md says which entry point
does which job and what it raises.
"""

from ranvier.protocol.auth import AuthError, check_auth, check_auth_events_consistency
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.canonical_json import (
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJSONError,
    check_strict_canonical_json,
    decode_json,
    encode_canonical_json,
)
from ranvier.protocol.event_builder import (
    EventBuildError,
    EventTemplate,
    PrevEvent,
    build_create_event,
    build_event,
)
from ranvier.protocol.event_ids import EventIDError, compute_event_id, room_id_from_create_event
from ranvier.protocol.events import Event
from ranvier.protocol.hashing import (
    add_content_hash,
    compute_content_hash,
    compute_reference_hash,
    content_hash_matches,
)
from ranvier.protocol.pdu_receipt import CheckedPDU, check_pdu_on_receipt
from ranvier.protocol.power_levels import INFINITE, PowerLevels, room_creators
from ranvier.protocol.redaction import redact
from ranvier.protocol.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    EventFormat,
    RoomVersion,
    StateResAlgorithm,
)
from ranvier.protocol.signing import (
    InvalidSignatureError,
    MissingSignatureError,
    SignatureError,
    VerifyKeys,
    required_signers,
    sign_event,
    sign_json,
    verify_event_signatures,
    verify_json,
)
from ranvier.protocol.signing_keys import (
    ServerSigningKey,
    decode_verify_key,
    format_signing_key_file,
    parse_signing_key_file,
)
from ranvier.protocol.state_res import resolve_state, resolve_state_sync
from ranvier.protocol.unpadded_base64 import decode_base64, encode_base64
from ranvier.protocol.validation import MAX_PDU_SIZE, PDUValidationError, validate_pdu

__all__ = [
    "DEFAULT_ROOM_VERSION",
    "INFINITE",
    "KNOWN_ROOM_VERSIONS",
    "MAX_PDU_SIZE",
    "MAX_SAFE_INTEGER",
    "MIN_SAFE_INTEGER",
    "AuthError",
    "CanonicalJSONError",
    "CheckedPDU",
    "Event",
    "EventBuildError",
    "EventFormat",
    "EventIDError",
    "EventTemplate",
    "InvalidSignatureError",
    "MissingSignatureError",
    "PDUValidationError",
    "PowerLevels",
    "PrevEvent",
    "RoomVersion",
    "ServerSigningKey",
    "SignatureError",
    "StateResAlgorithm",
    "VerifyKeys",
    "add_content_hash",
    "auth_types_for_event",
    "build_create_event",
    "build_event",
    "check_auth",
    "check_auth_events_consistency",
    "check_pdu_on_receipt",
    "check_strict_canonical_json",
    "compute_content_hash",
    "compute_event_id",
    "compute_reference_hash",
    "content_hash_matches",
    "decode_base64",
    "decode_json",
    "decode_verify_key",
    "encode_base64",
    "encode_canonical_json",
    "format_signing_key_file",
    "parse_signing_key_file",
    "redact",
    "required_signers",
    "resolve_state",
    "resolve_state_sync",
    "room_creators",
    "room_id_from_create_event",
    "sign_event",
    "sign_json",
    "validate_pdu",
    "verify_event_signatures",
    "verify_json",
]
