"""Server key responses: building ours, checking another server's, and notary signatures.

spec: server-server-api "Retrieving server keys" (keys_server.yaml, keys_query.yaml,
definitions/keys.yaml); appendices "Signing JSON".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from nacl.signing import VerifyKey

from ranvier.protocol.signing import (
    InvalidSignatureError,
    MissingSignatureError,
    sign_json,
    verify_json,
)
from ranvier.protocol.signing_keys import ED25519, ServerSigningKey, decode_verify_key
from ranvier.protocol.unpadded_base64 import encode_base64

# spec: definitions/keys.yaml valid_until_ts - use the lesser of it and 7 days into the future
MAX_KEY_VALIDITY_MS = 7 * 24 * 60 * 60 * 1000

# spec: definitions/keys.yaml - the version part of a key ID matches [a-zA-Z0-9_]
_KEY_ID = re.compile(r"[a-z0-9]+:[a-zA-Z0-9_]+")


class KeyResponseError(ValueError):
    """A server key response that is malformed, names another server, or is not signed by
    the server it describes."""


@dataclass(frozen=True, slots=True)
class OldVerifyKey:
    """A key the server no longer uses: it verifies what was signed before `expired_ts`."""

    verify_key: VerifyKey
    expired_ts: int


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """One server's checked key response.

    `valid_until_ts` is already capped at `MAX_KEY_VALIDITY_MS` after it was received.
    `response` is the signed JSON as received, for storing and serving on as a notary.
    """

    server_name: str
    verify_keys: Mapping[str, VerifyKey]
    old_verify_keys: Mapping[str, OldVerifyKey]
    valid_until_ts: int
    response: Mapping[str, Any] = field(repr=False)

    def key_ids(self) -> set[str]:
        return set(self.verify_keys) | set(self.old_verify_keys)

    def key_validity(self, key_id: str) -> tuple[VerifyKey, int] | None:
        """The key with the time until which it verifies signatures, or None if unknown."""
        if key_id in self.verify_keys:
            return self.verify_keys[key_id], self.valid_until_ts
        old = self.old_verify_keys.get(key_id)
        return None if old is None else (old.verify_key, old.expired_ts)


def build_key_response(
    server_name: str,
    signing_key: ServerSigningKey,
    old_verify_keys: Mapping[str, OldVerifyKey],
    valid_until_ts: int,
) -> dict[str, Any]:
    """Our `GET /_matrix/key/v2/server` answer, signed by our current key."""
    return sign_json(
        {
            "server_name": server_name,
            "verify_keys": {signing_key.key_id: {"key": signing_key.verify_key_base64}},
            "old_verify_keys": {
                key_id: {"key": encode_base64(bytes(old.verify_key)), "expired_ts": old.expired_ts}
                for key_id, old in old_verify_keys.items()
                # the current key is never also an old one
                if key_id != signing_key.key_id
            },
            "valid_until_ts": valid_until_ts,
        },
        server_name,
        signing_key,
    )


def parse_key_response(
    response: Any,
    server_name: str,
    *,
    received_ts: int,
    requested_key_ids: Iterable[str] = (),
) -> ServerKeys:
    """Check a key response said to be `server_name`'s and read its keys.

    The response must be well formed, name `server_name`, and be signed by it: at least one
    signature with a key it publishes in `verify_keys`, every such signature valid, and
    each of `requested_key_ids` it publishes as current among the signers.
    Raises KeyResponseError.
    """
    if not isinstance(response, Mapping):
        raise KeyResponseError("a key response must be a JSON object")
    if response.get("server_name") != server_name:
        raise KeyResponseError(
            f"key response names server {response.get('server_name')!r}, not {server_name!r}"
        )
    valid_until_ts = response.get("valid_until_ts")
    if not _is_int(valid_until_ts):
        raise KeyResponseError("valid_until_ts must be an integer")
    verify_keys = {
        key_id: _decode_key(key_id, entry)
        for key_id, entry in _object(response, "verify_keys").items()
        if _is_ed25519(key_id)
    }
    old_verify_keys: dict[str, OldVerifyKey] = {}
    for key_id, entry in _object(response, "old_verify_keys", required=False).items():
        if not _is_ed25519(key_id):
            continue
        expired_ts = entry.get("expired_ts") if isinstance(entry, Mapping) else None
        if not _is_int(expired_ts):
            raise KeyResponseError(f"old_verify_keys.{key_id}.expired_ts must be an integer")
        old_verify_keys[key_id] = OldVerifyKey(_decode_key(key_id, entry), expired_ts)
    if not verify_keys:
        raise KeyResponseError(f"{server_name} publishes no ed25519 key in verify_keys")
    try:
        verify_json(response, server_name, verify_keys)
    except (MissingSignatureError, InvalidSignatureError) as e:
        raise KeyResponseError(f"key response not signed by {server_name}: {e}") from e
    signers = _object(_object(response, "signatures"), server_name)
    for key_id in requested_key_ids:
        if key_id in verify_keys and key_id not in signers:
            raise KeyResponseError(f"key response not signed with {server_name}'s {key_id}")
    return ServerKeys(
        server_name=server_name,
        verify_keys=verify_keys,
        old_verify_keys=old_verify_keys,
        valid_until_ts=min(valid_until_ts, received_ts + MAX_KEY_VALIDITY_MS),
        response=response,
    )


def check_notary_signature(
    response: Mapping[str, Any], notary_name: str, notary_keys: Mapping[str, VerifyKey]
) -> None:
    """Check that the notary `notary_name` co-signed a key response with one of its keys.

    Raises MissingSignatureError or InvalidSignatureError.
    """
    verify_json(response, notary_name, notary_keys)


def add_notary_signature(
    response: Mapping[str, Any], notary_name: str, signing_key: ServerSigningKey
) -> dict[str, Any]:
    """A copy of another server's key response co-signed by us, the notary; other
    signatures are kept."""
    return sign_json(response, notary_name, signing_key)


def _object(obj: Mapping[str, Any], name: str, *, required: bool = True) -> Mapping[str, Any]:
    value = obj.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise KeyResponseError(f"{name} must be a JSON object")
    return value


def _decode_key(key_id: str, entry: Any) -> VerifyKey:
    key = entry.get("key") if isinstance(entry, Mapping) else None
    if not isinstance(key, str):
        raise KeyResponseError(f"key {key_id} has no 'key' string")
    try:
        return decode_verify_key(key)
    except ValueError as e:
        raise KeyResponseError(f"key {key_id} is not an ed25519 public key: {e}") from e


def _is_ed25519(key_id: Any) -> bool:
    return (
        isinstance(key_id, str)
        and _KEY_ID.fullmatch(key_id) is not None
        and key_id.partition(":")[0] == ED25519
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
