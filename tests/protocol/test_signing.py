"""Signing and verification against the appendix vectors, plus failure cases and properties."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from spec_vectors import (
    JSON_SIGNING_VECTORS,
    KEY_ID,
    MINIMAL_EVENT_SIGNED,
    REDACTABLE_EVENT_SIGNED,
    SERVER_NAME,
    minimal_event,
    redactable_event,
    spec_signing_key,
)

from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, V1, V3, V8, V10, V11, V12
from ranvier.protocol.signing import (
    InvalidSignatureError,
    MissingSignatureError,
    SignatureError,
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

KEY = spec_signing_key()
KEYS = {SERVER_NAME: {KEY_ID: KEY.verify_key}}
# room versions whose redaction keeps `origin`, as the appendix vectors were made under
PRE_V11 = [v for v in KNOWN_ROOM_VERSIONS.values() if not v.updated_redaction_rules]


@pytest.mark.parametrize(("unsigned", "signed"), JSON_SIGNING_VECTORS)
def test_appendix_json_signing_vectors(unsigned: dict[str, Any], signed: dict[str, Any]) -> None:
    original = copy.deepcopy(unsigned)
    assert sign_json(unsigned, SERVER_NAME, KEY) == signed
    assert unsigned == original, "sign_json must not modify its input"
    verify_json(signed, SERVER_NAME, {KEY_ID: KEY.verify_key})


@pytest.mark.parametrize("room_version", PRE_V11, ids=lambda v: f"v{v.identifier}")
def test_appendix_minimal_event_signing_vector(room_version: Any) -> None:
    signed = sign_event(minimal_event(), SERVER_NAME, KEY, room_version)
    assert signed == MINIMAL_EVENT_SIGNED
    verify_event_signatures(signed, room_version, KEYS)


def test_appendix_redactable_event_signing_vector() -> None:
    signed = sign_event(redactable_event(), SERVER_NAME, KEY, V1)
    assert signed == REDACTABLE_EVENT_SIGNED
    verify_event_signatures(signed, V1, KEYS)


def test_event_signature_survives_redaction_of_the_content() -> None:
    signed = copy.deepcopy(REDACTABLE_EVENT_SIGNED)
    signed["content"] = {}
    # spec: the signature covers the redacted form, so a redacted copy still verifies
    verify_event_signatures(signed, V1, KEYS)


def test_v11_signature_does_not_cover_origin() -> None:
    signed = sign_event(minimal_event(), SERVER_NAME, KEY, V11)
    assert signed["signatures"] != MINIMAL_EVENT_SIGNED["signatures"]
    signed["origin"] = "elsewhere"
    verify_event_signatures(signed, V11, KEYS)
    with pytest.raises(InvalidSignatureError):
        verify_event_signatures(signed, V10, KEYS)


def test_sign_json_keeps_other_signatures_and_unsigned() -> None:
    other = ServerSigningKey.from_seed(b"\x01" * 32, "x")
    obj = sign_json({"a": 1, "unsigned": {"age": 5}}, "other.org", other)
    signed = sign_json(obj, SERVER_NAME, KEY)
    assert set(signed["signatures"]) == {"other.org", SERVER_NAME}
    assert signed["unsigned"] == {"age": 5}
    # unsigned is not covered, so changing it keeps both signatures valid
    signed["unsigned"] = {"age": 99}
    verify_json(signed, SERVER_NAME, {KEY_ID: KEY.verify_key})
    verify_json(signed, "other.org", {"ed25519:x": other.verify_key})


def test_verify_json_missing_server() -> None:
    with pytest.raises(MissingSignatureError, match="no signature from domain") as info:
        verify_json({"signatures": {"other": {}}}, SERVER_NAME, {KEY_ID: KEY.verify_key})
    assert info.value.server_name == SERVER_NAME
    assert info.value.key_id is None


def test_verify_json_skips_unknown_keys_and_algorithms() -> None:
    signed = sign_json({"a": 1}, SERVER_NAME, KEY)
    signed["signatures"][SERVER_NAME]["ed25519:unknown"] = "garbage"
    signed["signatures"][SERVER_NAME]["curve25519:1"] = "garbage"
    verify_json(signed, SERVER_NAME, {KEY_ID: KEY.verify_key})
    with pytest.raises(MissingSignatureError, match="known ed25519 key"):
        verify_json(signed, SERVER_NAME, {"ed25519:other": KEY.verify_key})


@pytest.mark.parametrize("bad", ["not base64!", "AAAA", 12])
def test_verify_json_bad_signature_names_the_key(bad: Any) -> None:
    signed = sign_json({"a": 1}, SERVER_NAME, KEY)
    signed["signatures"][SERVER_NAME][KEY_ID] = bad
    with pytest.raises(InvalidSignatureError, match="domain") as info:
        verify_json(signed, SERVER_NAME, {KEY_ID: KEY.verify_key})
    assert info.value.key_id == KEY_ID


def test_verify_json_wrong_key() -> None:
    signed = sign_json({"a": 1}, SERVER_NAME, KEY)
    wrong = SigningKey(b"\x02" * 32).verify_key
    with pytest.raises(InvalidSignatureError):
        verify_json(signed, SERVER_NAME, {KEY_ID: wrong})


def test_strict_signing_refuses_floats() -> None:
    from ranvier.protocol.canonical_json import CanonicalJSONError

    with pytest.raises(CanonicalJSONError):
        sign_json({"a": 1.5}, SERVER_NAME, KEY, strict=True)


json_objects = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in ("signatures", "unsigned")),
    st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=10), st.booleans()),
    min_size=1,
    max_size=6,
)


@settings(max_examples=50)
@given(json_objects, st.binary(min_size=32, max_size=32))
def test_sign_verify_round_trip_and_tampering(obj: dict[str, Any], seed: bytes) -> None:
    try:
        key = ServerSigningKey.from_seed(seed, "k")
        signed = sign_json(obj, "s.example", key)
    except ValueError:
        return  # keys with lone surrogates are not JSON
    verify_json(signed, "s.example", {"ed25519:k": key.verify_key})
    tampered = dict(signed)
    first = next(iter(obj))
    tampered[first] = [obj[first]]
    with pytest.raises(InvalidSignatureError):
        verify_json(tampered, "s.example", {"ed25519:k": key.verify_key})


def _member(**content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "sender": "@alice:a.example",
        "state_key": "@alice:a.example",
        "event_id": "$ev:b.example",
        "content": content,
    }


@pytest.mark.parametrize(
    ("pdu", "room_version", "expected"),
    [
        (_member(membership="join"), V3, {"a.example"}),
        # v1/v2 also need the event ID's server
        (_member(membership="join"), V1, {"a.example", "b.example"}),
        # restricted joins: the authorising server too, from v8 on
        (
            _member(membership="join", join_authorised_via_users_server="@bob:c.example"),
            V8,
            {"a.example", "c.example"},
        ),
        (
            _member(membership="join", join_authorised_via_users_server="@bob:c.example"),
            V3,
            {"a.example"},
        ),
        # third-party invites may come from another server
        (_member(membership="invite", third_party_invite={"signed": {}}), V10, set()),
        ({"sender": "@u:port.example:8448"}, V12, {"port.example:8448"}),
    ],
)
def test_required_signers(pdu: dict[str, Any], room_version: Any, expected: set[str]) -> None:
    assert required_signers(pdu, room_version) == expected


def _signed_member(room_version: Any, **content: Any) -> dict[str, Any]:
    pdu = {
        "type": "m.room.member",
        "room_id": "!r:a.example",
        "sender": "@alice:domain",
        "state_key": "@alice:domain",
        "content": content,
        "depth": 5,
        "origin_server_ts": 1,
        "prev_events": [],
        "auth_events": [],
    }
    return sign_event(pdu, SERVER_NAME, KEY, room_version)


def test_restricted_join_without_the_authorising_signature_names_that_server() -> None:
    signed = _signed_member(V10, membership="join", join_authorised_via_users_server="@b:c.org")
    with pytest.raises(MissingSignatureError, match=r"c\.org") as info:
        verify_event_signatures(signed, V10, KEYS)
    assert info.value.server_name == "c.org"
    other = ServerSigningKey.from_seed(b"\x03" * 32, "c")
    countersigned = sign_event(signed, "c.org", other, V10)
    verify_event_signatures(countersigned, V10, {**KEYS, "c.org": {"ed25519:c": other.verify_key}})


def test_tampered_event_fails_and_names_the_key() -> None:
    signed = _signed_member(V12, membership="join")
    signed["content"]["membership"] = "leave"
    with pytest.raises(InvalidSignatureError) as info:
        verify_event_signatures(signed, V12, KEYS)
    assert (info.value.server_name, info.value.key_id) == (SERVER_NAME, KEY_ID)


def test_event_with_unusable_sender_is_refused() -> None:
    signed = _signed_member(V12, membership="join")
    signed["sender"] = "nobody"
    with pytest.raises(SignatureError, match="names no server"):
        verify_event_signatures(signed, V12, KEYS)


def test_signing_key_file_round_trip() -> None:
    text = "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n\n"
    (key,) = parse_signing_key_file(text)
    assert key.key_id == KEY_ID
    assert bytes(key.verify_key) == bytes(KEY.verify_key)
    # the spec's seed has non-zero padding bits; written back it is canonical base64
    formatted = format_signing_key_file([key])
    assert formatted == "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0\n"
    (again,) = parse_signing_key_file(formatted)
    assert bytes(again.signing_key) == bytes(key.signing_key)
    assert decode_verify_key(key.verify_key_base64) == KEY.verify_key


@pytest.mark.parametrize(
    ("text", "message"),
    [("ed25519 1", "line 1"), ("rsa 1 AAAA", "line 1"), ("\ned25519 1 AAAA", "line 2: .* 32")],
)
def test_signing_key_file_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_signing_key_file(text)


def test_key_ids_and_generation() -> None:
    with pytest.raises(ValueError, match="ed25519:<id>"):
        ServerSigningKey("ed25519:", SigningKey.generate())
    with pytest.raises(ValueError, match="32 bytes"):
        decode_verify_key("AAAA")
    generated = ServerSigningKey.generate("new")
    assert generated.key_id == "ed25519:new"
    signed = sign_json({}, "s", generated)
    verify_json(signed, "s", {"ed25519:new": generated.verify_key})
