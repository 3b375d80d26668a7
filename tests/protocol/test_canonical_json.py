"""Canonical JSON and unpadded base64 against the appendix examples, plus properties."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spec_vectors import CANONICAL_JSON_EXAMPLES

from ranvier.protocol.canonical_json import (
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJSONError,
    check_strict_canonical_json,
    decode_json,
    encode_canonical_json,
)
from ranvier.protocol.unpadded_base64 import decode_base64, encode_base64

# the appendix's examples as the spec writes them, copied into the project
APPENDIX_EXAMPLES = Path(__file__).parent / "spec" / "canonical_json_examples.md"


@pytest.mark.parametrize(("given_json", "expected"), CANONICAL_JSON_EXAMPLES)
@pytest.mark.parametrize("strict", [False, True])
def test_appendix_examples_byte_for_byte(given_json: str, expected: str, strict: bool) -> None:
    assert encode_canonical_json(decode_json(given_json), strict=strict) == expected.encode()


def test_every_appendix_example_is_covered() -> None:
    blocks = re.findall(r"```json\n(.*?)\n```", APPENDIX_EXAMPLES.read_text(), re.S)
    pairs = list(zip(blocks[0::2], blocks[1::2], strict=True))
    assert len(pairs) == len(CANONICAL_JSON_EXAMPLES) == 10
    for given_json, expected in pairs:
        assert encode_canonical_json(decode_json(given_json)) == expected.encode()


def _spec_reference(value: Any) -> bytes:
    # the appendix's own Python definition of canonical JSON
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
        "UTF-8"
    )


def test_control_characters_use_the_grammar_escapes() -> None:
    value = {"s": "".join(chr(c) for c in range(0x20)) + '"\\\x7f/'}
    encoded = encode_canonical_json(value)
    assert encoded == _spec_reference(value)
    assert b"\\b\\t\\n\\u000b\\f\\r" in encoded
    assert b"\\u001f" in encoded
    # DEL and '/' are not escaped
    assert encoded.endswith(b'\\"\\\\\x7f/"}')


def test_keys_sort_by_code_point_not_utf16() -> None:
    # U+FFFF sorts before U+1F600, although UTF-16 would order the surrogate pair first
    assert encode_canonical_json({"\U0001f600": 1, "\uffff": 2, "a": 3}) == (
        '{"a":3,"\uffff":2,"\U0001f600":1}'.encode()
    )


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER, MIN_SAFE_INTEGER, 0, -1])
def test_strict_accepts_safe_integers(value: int) -> None:
    assert encode_canonical_json({"n": value}, strict=True) == f'{{"n":{value}}}'.encode()


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, MIN_SAFE_INTEGER - 1, 2**63, -(2**70)])
def test_strict_rejects_unsafe_integers(value: int) -> None:
    with pytest.raises(CanonicalJSONError, match=r"a\.b\[1\].*outside"):
        encode_canonical_json({"a": {"b": [0, value]}}, strict=True)
    with pytest.raises(CanonicalJSONError):
        check_strict_canonical_json([value])


@pytest.mark.parametrize("value", [2**53, 2**64 - 1, 2**64, -(2**63) - 1, 10**30])
def test_lax_keeps_big_integers_exactly(value: int) -> None:
    # legacy room versions carry such values and their hashes must match the sender's
    assert encode_canonical_json([value]) == f"[{value}]".encode()


def test_strict_rejects_fractional_floats_naming_the_path() -> None:
    with pytest.raises(CanonicalJSONError, match=r"non-integer number at content\.users\.@bob:x"):
        encode_canonical_json({"content": {"users": {"@bob:x": 50.57}}}, strict=True)


def test_strict_rejects_floats_beyond_the_safe_range() -> None:
    with pytest.raises(CanonicalJSONError, match="non-integer number at top level"):
        encode_canonical_json(1e100, strict=True)


def test_lax_writes_fractional_floats_like_legacy_servers() -> None:
    # spec: rooms/fragments/v1-floaty-power-levels - such events exist in old rooms
    assert encode_canonical_json({"b": 50.57, "a": [1e100]}) == b'{"a":[1e+100],"b":50.57}'


@pytest.mark.parametrize("value", [1e10, -0.0, 2.0])
@pytest.mark.parametrize("strict", [False, True])
def test_integral_floats_are_written_as_integers(value: float, strict: bool) -> None:
    assert encode_canonical_json(value, strict=strict) == str(int(value)).encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(CanonicalJSONError, match="not allowed"):
        encode_canonical_json({"x": value})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1: "a"}, "key 1 .* not a string"),
        ({"a": {1, 2}}, "type set at a"),
        ({"a": b"bytes"}, "type bytes"),
        ({"a": "\ud800"}, "cannot encode"),
        ({"a": "\ud800", "big": 2**65}, "cannot encode"),
    ],
)
def test_unencodable_values_raise(value: Any, message: str) -> None:
    with pytest.raises(CanonicalJSONError, match=message):
        encode_canonical_json(value)


def test_tuples_encode_as_arrays() -> None:
    assert encode_canonical_json({"a": (1, "x")}) == b'{"a":[1,"x"]}'


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.5", 1.5),
        ("1.0", 1),
        ("-0.0", 0),
        ("15e-1", 1.5),
        ("1e300", 1e300),
        ("123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_decode_normalises_integral_numbers(text: str, value: float) -> None:
    decoded = decode_json(text)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "-Infinity", "1e999", "{", b"\xff"])
def test_decode_refuses_bad_json(text: str | bytes) -> None:
    with pytest.raises(CanonicalJSONError):
        decode_json(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(MIN_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_round_trip_and_agreement_with_the_spec_definition(value: Any) -> None:
    encoded = encode_canonical_json(value, strict=True)
    assert encoded == _spec_reference(value)
    assert decode_json(encoded) == value
    # canonical form is a fixed point
    assert encode_canonical_json(decode_json(encoded)) == encoded


@given(st.dictionaries(st.text(), st.integers(0, 10), max_size=8))
def test_key_order_of_the_input_does_not_matter(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    try:
        expected = encode_canonical_json(value)
    except CanonicalJSONError:
        # keys with lone surrogates are not valid Unicode and are refused either way
        with pytest.raises(CanonicalJSONError):
            encode_canonical_json(reordered)
        return
    assert encode_canonical_json(reordered) == expected


# spec: appendices "Unpadded Base64" examples
@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
    ],
)
def test_unpadded_base64_examples(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert encode_base64(raw, urlsafe=True) == encoded
    assert decode_base64(encoded) == raw
    # decoding SHOULD accept padding too
    assert decode_base64(encoded + "=" * (-len(encoded) % 4)) == raw


def test_url_safe_alphabet_uses_minus_and_underscore() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(raw) == "+/+/"
    assert encode_base64(raw, urlsafe=True) == "-_-_"
    assert decode_base64("-_-_") == decode_base64("+/+/") == raw


@given(st.binary(max_size=64), st.booleans())
def test_base64_round_trip_without_padding(raw: bytes, urlsafe: bool) -> None:
    encoded = encode_base64(raw, urlsafe=urlsafe)
    assert "=" not in encoded
    assert encoded == base64.b64encode(raw).decode().rstrip("=").translate(
        str.maketrans("+/", "-_") if urlsafe else {}
    )
    assert decode_base64(encoded) == raw


@pytest.mark.parametrize("text", ["Zm9vY", "é"])
def test_base64_decode_errors_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid base64"):
        decode_base64(text)
