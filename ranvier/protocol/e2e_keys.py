"""End-to-end encryption key objects: shapes, comparison and signatures, without I/O.

spec: client-server-api "End-to-End Encryption" (device keys, one-time and fallback keys,
"Cross-signing"); appendices "Signing JSON". Users sign their keys the way servers sign
JSON: `signatures[user_id]["ed25519:<key>"]` over the canonical JSON without `signatures`
and `unsigned`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from ranvier.protocol.canonical_json import CanonicalJSONError, encode_canonical_json
from ranvier.protocol.signing import SignatureError, verify_json
from ranvier.protocol.signing_keys import ED25519
from ranvier.protocol.unpadded_base64 import decode_base64

JsonDict = dict[str, Any]

MASTER = "master"
SELF_SIGNING = "self_signing"
USER_SIGNING = "user_signing"
CROSS_SIGNING_USAGES = (MASTER, SELF_SIGNING, USER_SIGNING)


class KeyFormatError(ValueError):
    """A key object does not have the shape the spec gives it; the message says why."""


def without_signatures(obj: Mapping[str, Any]) -> JsonDict:
    """What a signature covers: the object without `signatures` and `unsigned`."""
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def same_signed_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two key objects are the same key, whatever signatures each carries."""
    try:
        return encode_canonical_json(without_signatures(a)) == encode_canonical_json(
            without_signatures(b)
        )
    except CanonicalJSONError:
        return False


def canonical(obj: Any) -> bytes:
    """Canonical JSON of a key object; raises KeyFormatError if it has none."""
    try:
        return encode_canonical_json(obj)
    except CanonicalJSONError as e:
        raise KeyFormatError(str(e)) from e


def cross_signing_public_key(key: Mapping[str, Any]) -> str | None:
    """The public key a cross-signing key holds (the value of its one `keys` entry), if it
    holds exactly one."""
    keys = key.get("keys")
    if isinstance(keys, dict) and len(keys) == 1:
        value = next(iter(keys.values()))
        return value if isinstance(value, str) else None
    return None


def parse_key_name(name: str) -> tuple[str, str]:
    """`<algorithm>:<key_id>` of a one-time or fallback key, split."""
    algorithm, sep, key_id = name.partition(":")
    if not sep or not algorithm or not key_id:
        raise KeyFormatError(f"key name {name!r} is not '<algorithm>:<key_id>'")
    return algorithm, key_id


def parse_one_time_keys(keys: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """`one_time_keys` of an upload: (algorithm, key ID) -> key."""
    return {parse_key_name(name): key for name, key in _checked_keys(keys, "one_time_keys")}


def parse_fallback_keys(keys: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """`fallback_keys` of an upload: algorithm -> (key ID, key); one key per algorithm."""
    by_algorithm: dict[str, tuple[str, Any]] = {}
    for name, key in _checked_keys(keys, "fallback_keys"):
        algorithm, key_id = parse_key_name(name)
        if algorithm in by_algorithm:
            raise KeyFormatError(f"more than one fallback key for {algorithm}")
        by_algorithm[algorithm] = (key_id, key)
    return by_algorithm


def _checked_keys(keys: Mapping[str, Any], what: str) -> list[tuple[str, Any]]:
    for name, key in keys.items():
        # a key is a key object, or (curve25519 one-time keys of old) a bare string
        if not isinstance(key, dict | str):
            raise KeyFormatError(f"{what}.{name} must be an object or a string")
        canonical(key)
    return list(keys.items())


def check_device_keys(keys: Any) -> JsonDict:
    """The `device_keys` of an upload, checked for shape (spec: DeviceKeys)."""
    if not isinstance(keys, dict):
        raise KeyFormatError("device_keys must be an object")
    for field in ("user_id", "device_id"):
        if not isinstance(keys.get(field), str):
            raise KeyFormatError(f"device_keys.{field} must be a string")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise KeyFormatError("device_keys.algorithms must be a list of strings")
    _check_string_map(keys.get("keys"), "device_keys.keys")
    _check_signatures(keys.get("signatures"), "device_keys.signatures")
    canonical(keys)
    return keys


def device_verify_key(device_keys: Mapping[str, Any], device_id: str) -> VerifyKey | None:
    """The device's ed25519 key from its device keys, if it has a usable one."""
    keys = device_keys.get("keys")
    if not isinstance(keys, dict):
        return None
    return _verify_key(keys.get(f"{ED25519}:{device_id}"))


@dataclass(frozen=True)
class CrossSigningKey:
    """A checked cross-signing key: its one ed25519 public key and the object itself."""

    usage: str
    key_id: str  # "ed25519:<public key>"
    public_key: str
    verify_key: VerifyKey
    json: JsonDict


def check_cross_signing_key(obj: Any, user_id: str, usage: str) -> CrossSigningKey:
    """A cross-signing key of `user_id` for `usage` (spec: CrossSigningKey): the right
    user, the usage listed, exactly one ed25519 key named after itself."""
    if not isinstance(obj, dict):
        raise KeyFormatError(f"the {usage} key must be an object")
    if obj.get("user_id") != user_id:
        raise KeyFormatError(f"the {usage} key's user_id must be {user_id}")
    usages = obj.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise KeyFormatError(f"the {usage} key's usage must include {usage!r}")
    keys = _check_string_map(obj.get("keys"), f"the {usage} key's keys")
    if len(keys) != 1:
        raise KeyFormatError(f"the {usage} key must have exactly one key")
    ((key_id, public_key),) = keys.items()
    algorithm, _, name = key_id.partition(":")
    verify_key = _verify_key(public_key)
    if algorithm != ED25519 or name != public_key or verify_key is None:
        raise KeyFormatError(f"the {usage} key must be 'ed25519:<public key>': <public key>")
    if "signatures" in obj:
        _check_signatures(obj["signatures"], f"the {usage} key's signatures")
    canonical(obj)
    return CrossSigningKey(usage, key_id, public_key, verify_key, obj)


def verify_signature(
    obj: Mapping[str, Any], user_id: str, key_id: str, verify_key: VerifyKey
) -> bool:
    """Whether `obj` carries a good signature by `user_id` with `key_id`."""
    signatures = obj.get("signatures")
    by_user = signatures.get(user_id) if isinstance(signatures, dict) else None
    if not isinstance(by_user, dict) or key_id not in by_user:
        return False
    try:
        verify_json(
            {**obj, "signatures": {user_id: {key_id: by_user[key_id]}}},
            user_id,
            {key_id: verify_key},
        )
    except (SignatureError, CanonicalJSONError):
        return False
    return True


def _verify_key(public_key: Any) -> VerifyKey | None:
    if not isinstance(public_key, str):
        return None
    try:
        return VerifyKey(decode_base64(public_key))
    except (ValueError, CryptoError, TypeError):
        return None


def _check_string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise KeyFormatError(f"{what} must be an object of strings")
    return value


def _check_signatures(value: Any, what: str) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(by_key, dict) and all(isinstance(s, str) for s in by_key.values())
        for by_key in value.values()
    ):
        raise KeyFormatError(f"{what} must map user IDs to key IDs to signatures")
