"""The format, signature and hash checks on a PDU received over federation.

spec: server-server-api "Checks performed on receipt of a PDU" steps 1-3 and "Validating
hashes and signatures on received events". Steps 4-6 (auth rules) come after this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.hashing import content_hash_matches
from ranvier.protocol.redaction import redact
from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.signing import VerifyKeys, verify_event_signatures
from ranvier.protocol.validation import validate_pdu


@dataclass(frozen=True, slots=True)
class CheckedPDU:
    """A received PDU that passed the format and signature checks.

    `event` wraps the PDU to process further: the received one, or its redacted form when the
    content hash did not match (`redacted_for_bad_hash` is then True).
    """

    event: Event
    redacted_for_bad_hash: bool


def check_pdu_on_receipt(
    pdu: Mapping[str, Any], room_version: RoomVersion, keys: VerifyKeys
) -> CheckedPDU:
    """Validate, check signatures and check the content hash of a received PDU.

    Raises PDUValidationError (step 1: drop the event) or SignatureError (step 2: drop it).
    A wrong content hash is not an error: the spec says to carry on with the redacted copy.
    """
    validate_pdu(pdu, room_version)
    verify_event_signatures(pdu, room_version, keys)
    event_id = compute_event_id(pdu, room_version)
    if content_hash_matches(pdu):
        return CheckedPDU(Event(pdu, room_version, event_id), redacted_for_bad_hash=False)
    # the reference hash covers only what redaction keeps, so the event ID is unchanged
    return CheckedPDU(Event(redact(pdu, room_version), room_version, event_id), True)
