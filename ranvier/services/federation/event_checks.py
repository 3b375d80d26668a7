"""The first checks on every PDU another server hands us (spec: server-server-api "Checks
performed on receipt of a PDU", steps 1-3): its format, the signatures of every server
that must have signed it, and its content hash. The rules are pure
(protocol/pdu_receipt.py); this fetches the keys they need through the keyring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.signing import VerifyKey

from ranvier.protocol.events import Event
from ranvier.protocol.pdu_receipt import check_pdu_on_receipt
from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.signing import required_signers
from ranvier.protocol.validation import validate_pdu
from ranvier.services.federation.keyring import Keyring

ED25519 = "ed25519"


class EventVerifier:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    async def check_pdu(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> Event:
        """Format, signatures (the sender's server; for room versions 1 and 2 the event ID's
        server; a restricted join's authorising server), content hash. Returns the event
        to go on with: redacted when the hash did not match (spec: "Validating hashes and
        signatures on received events"). Raises PDUValidationError or SignatureError."""
        validate_pdu(pdu, room_version)
        # spec: rooms/fragments/v5-signing-requirements - from v5 a key counts only for
        # events sent while it was valid
        valid_at = int(pdu["origin_server_ts"]) if room_version.enforce_key_validity else 0
        signatures = pdu.get("signatures")
        keys: dict[str, dict[str, VerifyKey]] = {}
        for server_name in required_signers(pdu, room_version):
            by_key = signatures.get(server_name) if isinstance(signatures, Mapping) else None
            key_ids = {
                key_id
                for key_id in (by_key if isinstance(by_key, Mapping) else ())
                if isinstance(key_id, str) and key_id.partition(":")[0] == ED25519
            }
            if not key_ids:
                continue  # the pure check names the missing signature
            found = await self._keyring.get_server_verify_keys(
                server_name, key_ids, minimum_valid_until_ts=valid_at
            )
            keys[server_name] = {
                key_id: key.verify_key
                for key_id, key in found.items()
                if key.valid_until_ts >= valid_at
            }
        return check_pdu_on_receipt(pdu, room_version, keys).event
