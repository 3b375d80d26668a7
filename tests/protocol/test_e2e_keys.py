"""Key objects of end-to-end encryption: shapes and user signatures (ranvier.protocol.e2e_keys)."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from ranvier.protocol.e2e_keys import (
    KeyFormatError,
    check_cross_signing_key,
    check_device_keys,
    device_verify_key,
    parse_key_name,
    same_signed_content,
    verify_signature,
)
from ranvier.protocol.signing import sign_json
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.unpadded_base64 import encode_base64

ALICE = "@alice:example.org"


def new_key() -> ServerSigningKey:
    key = SigningKey.generate()
    return ServerSigningKey(f"ed25519:{encode_base64(bytes(key.verify_key))}", key)


def cross_signing_json(key: ServerSigningKey, usage: str) -> dict[str, Any]:
    public = key.key_id.partition(":")[2]
    return {"user_id": ALICE, "usage": [usage], "keys": {key.key_id: public}}


def test_a_cross_signing_key_is_checked_and_its_signatures_verified() -> None:
    master, self_signing = new_key(), new_key()
    checked = check_cross_signing_key(cross_signing_json(master, "master"), ALICE, "master")
    assert checked.key_id == master.key_id
    signed = sign_json(cross_signing_json(self_signing, "self_signing"), ALICE, master)
    assert verify_signature(signed, ALICE, checked.key_id, checked.verify_key)
    # another key under the master key's name, or a changed object, does not verify
    impostor = ServerSigningKey(master.key_id, SigningKey.generate())
    forged = sign_json(cross_signing_json(self_signing, "self_signing"), ALICE, impostor)
    assert not verify_signature(forged, ALICE, checked.key_id, checked.verify_key)
    tampered = {**signed, "usage": ["self_signing", "master"]}
    assert not verify_signature(tampered, ALICE, checked.key_id, checked.verify_key)
    assert not verify_signature(signed, "@bob:example.org", checked.key_id, checked.verify_key)
    unsigned = cross_signing_json(self_signing, "self_signing")
    assert not verify_signature(unsigned, ALICE, checked.key_id, checked.verify_key)


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "@bob:example.org"},
        {"usage": ["self_signing"]},
        {"usage": "master"},
        {"keys": {}},
        {"keys": {"ed25519:abc": "abc"}},
        {"keys": {"curve25519:x": "x"}},
        {"signatures": {"@alice:example.org": "sig"}},
    ],
)
def test_malformed_cross_signing_keys_are_refused(change: dict[str, Any]) -> None:
    obj = {**cross_signing_json(new_key(), "master"), **change}
    with pytest.raises(KeyFormatError):
        check_cross_signing_key(obj, ALICE, "master")


def test_a_key_named_after_another_public_key_is_refused() -> None:
    obj = cross_signing_json(new_key(), "master")
    ((key_id, _),) = obj["keys"].items()
    obj["keys"] = {key_id: encode_base64(bytes(SigningKey.generate().verify_key))}
    with pytest.raises(KeyFormatError):
        check_cross_signing_key(obj, ALICE, "master")


def test_device_keys_shape_and_identity_key() -> None:
    device = new_key()
    public = device.key_id.partition(":")[2]
    keys = {
        "user_id": ALICE,
        "device_id": "DEV",
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {"ed25519:DEV": public, "curve25519:DEV": "c"},
        "signatures": {},
    }
    assert check_device_keys(keys) is keys
    verify_key = device_verify_key(keys, "DEV")
    assert verify_key is not None and bytes(verify_key) == bytes(device.verify_key)
    assert device_verify_key(keys, "OTHER") is None
    for broken in (
        {**keys, "algorithms": "x"},
        {**keys, "keys": {"a": 1}},
        {**keys, "device_id": 3},
    ):
        with pytest.raises(KeyFormatError):
            check_device_keys(broken)


def test_key_names_and_comparison_without_signatures() -> None:
    assert parse_key_name("signed_curve25519:AAAB") == ("signed_curve25519", "AAAB")
    assert parse_key_name("a:b:c") == ("a", "b:c")
    for bad in ("nocolon", ":id", "algo:"):
        with pytest.raises(KeyFormatError):
            parse_key_name(bad)
    key = {"key": "k", "signatures": {ALICE: {"ed25519:X": "s"}}}
    assert same_signed_content(key, {"key": "k", "unsigned": {"a": 1}})
    assert not same_signed_content(key, {"key": "other"})
