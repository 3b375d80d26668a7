"""Content hashes and reference hashes of events.

spec: server-server-api "Calculating the content hash for an event" and
"Calculating the reference hash for an event".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ranvier.protocol.canonical_json import encode_canonical_json
from ranvier.protocol.redaction import redact
from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.unpadded_base64 import decode_base64, encode_base64


def compute_content_hash(pdu: Mapping[str, Any]) -> bytes:
    """SHA-256 over the canonical JSON of the whole event minus unsigned, signatures, hashes.

    Lax canonical JSON is used: legacy events may carry floats or big integers, and the
    strictness of newer room versions is enforced by validation, not here.
    """
    stripped = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def add_content_hash(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `pdu` with `hashes.sha256` set to its content hash."""
    hashed = dict(pdu)
    hashed["hashes"] = {"sha256": encode_base64(compute_content_hash(pdu))}
    return hashed


def content_hash_matches(pdu: Mapping[str, Any]) -> bool:
    """Whether `hashes.sha256` of the PDU is its actual content hash."""
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    claimed = hashes.get("sha256")
    if not isinstance(claimed, str):
        return False
    try:
        return decode_base64(claimed) == compute_content_hash(pdu)
    except ValueError:
        return False


def compute_reference_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 over the canonical JSON of the redacted event minus signatures and unsigned."""
    redacted = redact(pdu, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(
        encode_canonical_json(redacted, strict=room_version.strict_canonicaljson)
    ).digest()
