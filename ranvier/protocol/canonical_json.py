"""Canonical JSON: the exact bytes that are hashed and signed.

spec: appendices "Canonical JSON" - shortest UTF-8 encoding, keys sorted by code point,
integers only, in [-(2**53)+1, (2**53)-1] for room versions whose rules are strict
(rooms/fragments/v6-canonical-json); older versions are lax (v1-canonical-json).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import canonicaljson
import orjson

MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1

# orjson refuses integers outside the 64-bit range; those fall back to the stdlib encoder.
_ORJSON_MIN_INT = -(2**63)
_ORJSON_MAX_INT = 2**64 - 1


class CanonicalJSONError(ValueError):
    """The value cannot be represented as (strict) canonical JSON; the message says where."""


def encode_canonical_json(value: Any, *, strict: bool = False) -> bytes:
    """The canonical JSON bytes of `value`.

    Floats with an integral value in the safe range (`-0.0`, `1e10`) are written as
    integers, as the spec's examples require. Other floats raise in strict mode; in lax
    mode they are written the way the stdlib writes them, which is how legacy (room
    version 1-5) events were hashed.

    Raises CanonicalJSONError for NaN/infinity, non-string object keys, unsupported types,
    strings that are not valid Unicode (lone surrogates), and, when `strict`, fractional
    numbers and integers outside [-(2**53)+1, (2**53)-1].
    """
    normalised, orjson_safe = _normalise(value, strict, "")
    if orjson_safe:
        try:
            return orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as e:
            # only invalid strings (lone surrogates) get here after _normalise
            raise CanonicalJSONError(f"cannot encode as canonical JSON: {e}") from e
    try:
        return canonicaljson.encode_canonical_json(normalised)
    except (UnicodeEncodeError, ValueError) as e:
        raise CanonicalJSONError(f"cannot encode as canonical JSON: {e}") from e


def check_strict_canonical_json(value: Any) -> None:
    """Raise CanonicalJSONError unless `value` satisfies the strict rules of room versions 6+."""
    _normalise(value, True, "")


def decode_json(data: bytes | str) -> Any:
    """Parse JSON received from the network.

    Numbers with an integral value become ints even when written with an exponent or a
    fraction (`1e10` -> 10000000000), since JSON numbers denote values, not spellings
    (spec: appendices "Canonical JSON" examples). NaN and Infinity are refused.
    Raises CanonicalJSONError on malformed input.
    """
    try:
        return json.loads(data, parse_float=_parse_number, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, CanonicalJSONError):
            raise
        raise CanonicalJSONError(f"invalid JSON: {e}") from e


def _parse_number(text: str) -> int | float:
    as_float = float(text)
    if not math.isfinite(as_float):
        raise CanonicalJSONError(f"number out of range: {text}")
    # Decimal keeps large integral values exact; the bound stops `1e999999` expansion
    if as_float.is_integer() and abs(as_float) < 2.0**64:
        return int(Decimal(text))
    return as_float


def _refuse_constant(text: str) -> Any:
    raise CanonicalJSONError(f"{text} is not valid JSON")


def _normalise(value: Any, strict: bool, path: str) -> tuple[Any, bool]:
    """Return (value with integral floats turned into ints, whether orjson can encode it)."""
    # bool before int: bool is a subclass of int
    if value is None or isinstance(value, (bool, str)):
        return value, True
    if isinstance(value, int):
        if strict and not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJSONError(
                f"integer at {_where(path)} is outside [-(2**53)+1, (2**53)-1]: {value}"
            )
        return int(value), _ORJSON_MIN_INT <= value <= _ORJSON_MAX_INT
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalJSONError(f"{value} at {_where(path)} is not allowed in JSON")
        # beyond the safe range a float's integer value is not what the sender wrote
        if value.is_integer() and MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value), True
        if strict:
            raise CanonicalJSONError(
                f"non-integer number at {_where(path)} is not allowed: {value!r}"
            )
        return value, False
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        safe = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"object key {key!r} at {_where(path)} is not a string")
            out[key], item_safe = _normalise(item, strict, f"{path}.{key}")
            safe = safe and item_safe
        return out, safe
    if isinstance(value, (list, tuple)):
        items = []
        safe = True
        for index, item in enumerate(value):
            normalised, item_safe = _normalise(item, strict, f"{path}[{index}]")
            items.append(normalised)
            safe = safe and item_safe
        return items, safe
    raise CanonicalJSONError(
        f"value of type {type(value).__name__} at {_where(path)} is not JSON-serialisable"
    )


def _where(path: str) -> str:
    return path.lstrip(".") or "top level"
