"""Signing and verifying JSON objects and events with ed25519.

spec: appendices "Signing JSON", "Signing Details", "Checking for a Signature";
server-server-api "Signing Events" and "Validating hashes and signatures on received events";
rooms/v8 auth rules (restricted joins must be signed by the authorising server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ranvier.protocol.canonical_json import encode_canonical_json
from ranvier.protocol.hashing import add_content_hash
from ranvier.protocol.redaction import redact
from ranvier.protocol.room_versions import EventFormat, RoomVersion
from ranvier.protocol.signing_keys import ED25519, ServerSigningKey
from ranvier.protocol.unpadded_base64 import decode_base64, encode_base64

# server name -> key ID (`ed25519:abc`) -> public key
VerifyKeys = Mapping[str, Mapping[str, VerifyKey]]


class SignatureError(ValueError):
    """A required signature is missing or does not verify.

    `server_name` is the entity whose signature failed; `key_id` is the key whose signature
    is bad, or None when no signature with a known key was found at all.
    """

    def __init__(self, message: str, server_name: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.server_name = server_name
        self.key_id = key_id


class MissingSignatureError(SignatureError):
    """No signature by the entity made with a key we know."""


class InvalidSignatureError(SignatureError):
    """A signature is present for a known key but is malformed or does not match."""


def _signed_bytes(obj: Mapping[str, Any], strict: bool) -> bytes:
    # spec: appendices "Signing Details" - `signatures` and `unsigned` are not covered
    return encode_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}, strict=strict
    )


def sign_json(
    obj: Mapping[str, Any],
    server_name: str,
    signing_key: ServerSigningKey,
    *,
    strict: bool = False,
) -> dict[str, Any]:
    """A copy of `obj` with `signatures[server_name][key_id]` added; other signatures are kept.

    `strict` applies strict canonical JSON (room versions 6+); raises CanonicalJSONError.
    """
    signature = encode_base64(signing_key.sign(_signed_bytes(obj, strict)))
    signed = dict(obj)
    signatures = {name: dict(by_key) for name, by_key in _as_mapping(obj.get("signatures")).items()}
    signatures.setdefault(server_name, {})[signing_key.key_id] = signature
    signed["signatures"] = signatures
    return signed


def verify_json(
    obj: Mapping[str, Any],
    server_name: str,
    verify_keys: Mapping[str, VerifyKey],
    *,
    strict: bool = False,
) -> None:
    """Check that `server_name` signed `obj` with one of `verify_keys` (key ID -> public key).

    Signatures by keys not in `verify_keys` or with unknown algorithms are skipped; at least
    one must remain and every one that remains must verify.
    Raises MissingSignatureError or InvalidSignatureError.
    """
    by_key = _as_mapping(_as_mapping(obj.get("signatures")).get(server_name))
    if not by_key:
        raise MissingSignatureError(f"no signature from {server_name}", server_name)
    checkable = {
        key_id: signature
        for key_id, signature in by_key.items()
        if isinstance(key_id, str) and key_id.partition(":")[0] == ED25519 and key_id in verify_keys
    }
    if not checkable:
        raise MissingSignatureError(
            f"no signature from {server_name} with a known ed25519 key "
            f"(signed with {sorted(map(str, by_key))}, known {sorted(verify_keys)})",
            server_name,
        )
    message = _signed_bytes(obj, strict)
    for key_id, signature in sorted(checkable.items()):
        if not isinstance(signature, str):
            raise InvalidSignatureError(
                f"signature {server_name} {key_id} is not a string", server_name, key_id
            )
        try:
            verify_keys[key_id].verify(message, decode_base64(signature))
        except (ValueError, BadSignatureError) as e:
            raise InvalidSignatureError(
                f"bad signature from {server_name} with {key_id}", server_name, key_id
            ) from e


def sign_event(
    pdu: Mapping[str, Any],
    server_name: str,
    signing_key: ServerSigningKey,
    room_version: RoomVersion,
) -> dict[str, Any]:
    """A copy of `pdu` with its content hash set and signed by `server_name`.

    spec: server-server-api "Adding hashes and signatures to outgoing events" - hash the full
    event, then sign its redacted form, and copy the signature back.
    """
    hashed = add_content_hash(pdu)
    signed_redacted = sign_json(
        redact(hashed, room_version),
        server_name,
        signing_key,
        strict=room_version.strict_canonicaljson,
    )
    hashed["signatures"] = signed_redacted["signatures"]
    return hashed


def countersign_event(
    pdu: Mapping[str, Any],
    server_name: str,
    signing_key: ServerSigningKey,
    room_version: RoomVersion,
) -> dict[str, Any]:
    """A copy of another server's `pdu` with `server_name`'s signature added over its
    redacted form; its hashes and other signatures are kept as they are (an invite
    signed by the invitee's server). Raises CanonicalJSONError."""
    signed_redacted = sign_json(
        redact(pdu, room_version),
        server_name,
        signing_key,
        strict=room_version.strict_canonicaljson,
    )
    countersigned = dict(pdu)
    countersigned["signatures"] = signed_redacted["signatures"]
    return countersigned


def required_signers(pdu: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The servers whose signatures an event must carry to be accepted."""
    servers: set[str] = set()
    content = _as_mapping(pdu.get("content"))
    is_member = pdu.get("type") == "m.room.member"
    membership = content.get("membership")
    # spec: server-server-api - a third-party invite may be sent by a server other than
    # the sender's; the sender is checked against the invite instead
    if not (is_member and membership == "invite" and "third_party_invite" in content):
        domain = _domain(pdu.get("sender"))
        if domain is not None:
            servers.add(domain)
    # spec: server-server-api - v1/v2 also need the server named in the event ID
    if room_version.event_format is EventFormat.V1:
        domain = _domain(pdu.get("event_id"))
        if domain is not None:
            servers.add(domain)
    # spec: rooms/v8 auth rules 4.2.1 - the server of the authorising user signs the join
    if room_version.restricted_join_rule and is_member and membership == "join":
        domain = _domain(content.get("join_authorised_via_users_server"))
        if domain is not None:
            servers.add(domain)
    return servers


def verify_event_signatures(
    pdu: Mapping[str, Any], room_version: RoomVersion, keys: VerifyKeys
) -> None:
    """Check every signature `required_signers` asks for, over the redacted event.

    `keys` holds, per server, the keys to trust for this event: from room version 5 the
    caller passes only keys valid at the event's origin_server_ts
    (spec: rooms/fragments/v5-signing-requirements).
    Raises MissingSignatureError or InvalidSignatureError naming the server (and key).
    """
    if _domain(pdu.get("sender")) is None:
        raise MissingSignatureError(f"sender {pdu.get('sender')!r} names no server", "")
    signers = required_signers(pdu, room_version)
    redacted = redact(pdu, room_version)
    for server_name in sorted(signers):
        verify_json(
            redacted,
            server_name,
            keys.get(server_name, {}),
            strict=room_version.strict_canonicaljson,
        )


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _domain(identifier: Any) -> str | None:
    """The server name of a `@user:server` or `$event:server` identifier."""
    if not isinstance(identifier, str):
        return None
    _, sep, domain = identifier.partition(":")
    return domain if sep and domain else None
