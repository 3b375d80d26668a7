"""Server key responses: ours as published, and the checks on another server's."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ranvier.protocol.server_keys import (
    MAX_KEY_VALIDITY_MS,
    KeyResponseError,
    OldVerifyKey,
    add_notary_signature,
    build_key_response,
    check_notary_signature,
    parse_key_response,
)
from ranvier.protocol.signing import InvalidSignatureError, MissingSignatureError, sign_json
from ranvier.protocol.signing_keys import ServerSigningKey, decode_verify_key

KEY = ServerSigningKey.from_seed(b"\x01" * 32, "current")
OLD = ServerSigningKey.from_seed(b"\x02" * 32, "old")
OTHER = ServerSigningKey.from_seed(b"\x03" * 32, "other")
NOW = 1_700_000_000_000


def response(valid_until_ts: int = NOW + 3_600_000) -> dict[str, Any]:
    return build_key_response(
        "b.example",
        KEY,
        {OLD.key_id: OldVerifyKey(OLD.verify_key, NOW - 1000)},
        valid_until_ts,
    )


def test_built_response_has_the_published_shape_and_verifies() -> None:
    built = response()
    assert built["server_name"] == "b.example"
    assert built["verify_keys"] == {KEY.key_id: {"key": KEY.verify_key_base64}}
    assert built["old_verify_keys"] == {
        OLD.key_id: {"key": OLD.verify_key_base64, "expired_ts": NOW - 1000}
    }
    assert built["valid_until_ts"] == NOW + 3_600_000
    assert list(built["signatures"]) == ["b.example"]
    assert list(built["signatures"]["b.example"]) == [KEY.key_id]

    keys = parse_key_response(built, "b.example", received_ts=NOW, requested_key_ids=[KEY.key_id])
    assert bytes(keys.verify_keys[KEY.key_id]) == bytes(KEY.verify_key)
    assert keys.old_verify_keys[OLD.key_id].expired_ts == NOW - 1000
    assert keys.valid_until_ts == NOW + 3_600_000
    assert keys.key_validity(OLD.key_id) == (OLD.verify_key, NOW - 1000)
    assert keys.key_validity("ed25519:unknown") is None


def test_the_current_key_is_not_listed_as_old() -> None:
    built = build_key_response(
        "b.example", KEY, {KEY.key_id: OldVerifyKey(KEY.verify_key, NOW)}, NOW
    )
    assert built["old_verify_keys"] == {}


def test_validity_is_capped_at_seven_days_after_receipt() -> None:
    keys = parse_key_response(response(NOW + 30 * 86_400_000), "b.example", received_ts=NOW)
    assert keys.valid_until_ts == NOW + MAX_KEY_VALIDITY_MS


def test_a_response_for_another_server_is_refused() -> None:
    with pytest.raises(KeyResponseError, match=r"not 'c\.example'"):
        parse_key_response(response(), "c.example", received_ts=NOW)


def test_an_unsigned_response_is_refused() -> None:
    unsigned = response()
    del unsigned["signatures"]
    with pytest.raises(KeyResponseError, match="not signed"):
        parse_key_response(unsigned, "b.example", received_ts=NOW)


def test_a_response_signed_only_by_a_key_it_does_not_publish_is_refused() -> None:
    built = response()
    del built["signatures"]
    resigned = sign_json(built, "b.example", OTHER)
    with pytest.raises(KeyResponseError, match="not signed"):
        parse_key_response(resigned, "b.example", received_ts=NOW)


def test_a_response_signed_by_someone_else_is_refused() -> None:
    built = response()
    del built["signatures"]
    with pytest.raises(KeyResponseError, match="not signed"):
        parse_key_response(sign_json(built, "evil.example", KEY), "b.example", received_ts=NOW)


def test_the_key_asked_for_must_have_signed() -> None:
    # two current keys, signed with one: asking for the other is refused
    built = response()
    del built["signatures"]
    built["verify_keys"][OTHER.key_id] = {"key": OTHER.verify_key_base64}
    signed = sign_json(built, "b.example", KEY)
    parse_key_response(signed, "b.example", received_ts=NOW, requested_key_ids=[KEY.key_id])
    with pytest.raises(KeyResponseError, match=OTHER.key_id):
        parse_key_response(signed, "b.example", received_ts=NOW, requested_key_ids=[OTHER.key_id])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(valid_until_ts="soon"), "valid_until_ts"),
        (lambda r: r.update(valid_until_ts=True), "valid_until_ts"),
        (lambda r: r.pop("valid_until_ts"), "valid_until_ts"),
        (lambda r: r.update(verify_keys=[]), "verify_keys"),
        (lambda r: r.pop("verify_keys"), "verify_keys"),
        (lambda r: r.update(verify_keys={}), "no ed25519 key"),
        (lambda r: r["verify_keys"][KEY.key_id].update(key=12), "no 'key' string"),
        (lambda r: r["verify_keys"][KEY.key_id].update(key="AAAA"), "not an ed25519"),
        (lambda r: r["verify_keys"][KEY.key_id].update(key="!!"), "not an ed25519"),
        (lambda r: r.update(old_verify_keys="x"), "old_verify_keys"),
        (lambda r: r["old_verify_keys"][OLD.key_id].pop("expired_ts"), "expired_ts"),
        (lambda r: r.update(server_name=None), "names server"),
    ],
)
def test_malformed_responses_are_refused(change: Any, message: str) -> None:
    built = response()
    change(built)
    with pytest.raises(KeyResponseError, match=message):
        parse_key_response(built, "b.example", received_ts=NOW)


def test_non_objects_are_refused() -> None:
    values: list[Any] = [None, [], "x", 3]
    for value in values:
        with pytest.raises(KeyResponseError):
            parse_key_response(value, "b.example", received_ts=NOW)


@given(
    field=st.sampled_from(["server_name", "valid_until_ts", "verify_keys", "old_verify_keys"]),
    value=st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
)
def test_any_tampering_with_a_signed_field_is_caught(field: str, value: Any) -> None:
    built = response()
    tampered = copy.deepcopy(built)
    tampered[field] = value
    if tampered[field] == built[field] and type(tampered[field]) is type(built[field]):
        return
    with pytest.raises(KeyResponseError):
        parse_key_response(tampered, "b.example", received_ts=NOW)


@given(valid_until_ts=st.integers(min_value=0, max_value=2**53), extra=st.text(max_size=10))
def test_added_or_changed_content_breaks_the_signature(valid_until_ts: int, extra: str) -> None:
    built = response(valid_until_ts)
    parse_key_response(built, "b.example", received_ts=NOW)
    tampered = dict(built, extra_field=extra)
    with pytest.raises(KeyResponseError, match="not signed"):
        parse_key_response(tampered, "b.example", received_ts=NOW)


def test_unknown_algorithms_and_odd_key_ids_are_skipped() -> None:
    built = response()
    del built["signatures"]
    built["verify_keys"]["curve25519:x"] = {"key": "whatever"}
    built["verify_keys"]["ed25519:bad/id"] = {"key": "whatever"}
    keys = parse_key_response(sign_json(built, "b.example", KEY), "b.example", received_ts=NOW)
    assert set(keys.verify_keys) == {KEY.key_id}


def test_notary_signature_is_added_and_checked() -> None:
    cosigned = add_notary_signature(response(), "notary.example", OTHER)
    # the origin's signature is kept and still verifies
    parse_key_response(cosigned, "b.example", received_ts=NOW)
    check_notary_signature(cosigned, "notary.example", {OTHER.key_id: OTHER.verify_key})
    with pytest.raises(MissingSignatureError):
        check_notary_signature(response(), "notary.example", {OTHER.key_id: OTHER.verify_key})
    with pytest.raises(MissingSignatureError):
        check_notary_signature(cosigned, "notary.example", {KEY.key_id: KEY.verify_key})
    wrong = {OTHER.key_id: decode_verify_key(KEY.verify_key_base64)}
    with pytest.raises(InvalidSignatureError):
        check_notary_signature(cosigned, "notary.example", wrong)
    tampered = dict(cosigned, valid_until_ts=cosigned["valid_until_ts"] + 1)
    with pytest.raises(InvalidSignatureError):
        check_notary_signature(tampered, "notary.example", {OTHER.key_id: OTHER.verify_key})
