"""The limits every JSON value from outside must keep, and serving what predates them.

Everything stored is served again later, wrapped deeper: an event's content sits about ten
objects down in a /sync response, more inside `unsigned` of another event. orjson refuses
to write anything nested more than 254 deep, so content accepted near that limit could be
stored and then break every response that carries it. Input is therefore held to
`MAX_DEPTH`, far below, leaving room for any wrapping. Numbers are held to the range
canonical JSON allows (spec: appendices "Canonical JSON"): beyond it integers lose
precision in JavaScript clients, and a parser turns integers past 64 bits into floats.
Strings may not hold U+0000: PostgreSQL cannot store it in text, and no client needs it.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ranvier.protocol.canonical_json import MAX_SAFE_INTEGER, MIN_SAFE_INTEGER

# nested objects and arrays a value may have, the outermost counting as one
MAX_DEPTH = 100
# a response nested deeper than this is pruned before it is written (orjson stops at 254)
MAX_SERVED_DEPTH = 200
# keys whose value is a client's free-form JSON: served empty if it is deeper than input
# could be, rather than cut somewhere inside
_CONTENT_KEYS = ("content", "prev_content")
_NUL = "strings may not contain U+0000"


class JSONLimitError(ValueError):
    """A value is nested too deep, holds a number out of range or a string with U+0000; the
    message says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        # filled in innermost first while the error travels out of the value
        self.path_reversed: list[str] = []

    def __str__(self) -> str:
        path = list(reversed(self.path_reversed))
        if len(path) > 6:
            path = [*path[:3], "...", *path[-2:]]
        where = "".join(path).lstrip(".") or "the top level"
        return f"{self.reason} (at {where})"


def check_json_limits(value: Any) -> None:
    """Raise JSONLimitError unless `value` keeps MAX_DEPTH, the canonical number range and
    strings without U+0000."""
    _check(value, 1)


def _check(value: Any, depth: int) -> None:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        _check_scalar(value)
        return
    if depth > MAX_DEPTH:
        raise JSONLimitError(f"JSON may be nested at most {MAX_DEPTH} levels deep")
    for key, item in items:
        try:
            if isinstance(key, str) and "\x00" in key:
                raise JSONLimitError(_NUL)
            _check(item, depth + 1)
        except JSONLimitError as error:
            error.path_reversed.append(f"[{key}]" if isinstance(key, int) else f".{key}")
            raise


def _check_scalar(value: Any) -> None:
    if type(value) is str:
        if "\x00" in value:
            raise JSONLimitError(_NUL)
    # bool is an int subclass; True is not a number here
    elif type(value) is int:
        if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise JSONLimitError(f"integer {value} is outside [-(2**53)+1, (2**53)-1]")
    # a parser gives integers too long for 64 bits as floats: refuse them the same way
    elif type(value) is float and not (
        math.isfinite(value) and MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    ):
        raise JSONLimitError(f"number {value!r} is outside [-(2**53)+1, (2**53)-1]")


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` has more than `limit` levels of objects and arrays."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if limit <= 0:
        return True
    return any(depth_exceeds(child, limit - 1) for child in children)


def dumps_for_serving(value: Any) -> bytes:
    """`value` as JSON bytes. What was stored before input was held to these limits may be
    too deep to write; it is served pruned rather than failing the whole answer."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return orjson.dumps(prune_for_serving(value))


def prune_for_serving(value: Any) -> Any:
    """A copy of `value` that any serialiser can write, for responses that carry JSON stored
    before the input limits held: a `content` (or `prev_content`) nested more than
    MAX_DEPTH deep is served as `{}`, as a redaction would leave a message, and any
    container still deeper than MAX_SERVED_DEPTH is served empty."""
    return _prune(value, 1)


def _prune(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth > MAX_SERVED_DEPTH:
            return {}
        pruned: dict[str, Any] = {}
        for key, item in value.items():
            if key in _CONTENT_KEYS and depth_exceeds(item, MAX_DEPTH):
                pruned[key] = {}
            else:
                pruned[key] = _prune(item, depth + 1)
        return pruned
    if isinstance(value, (list, tuple)):
        if depth > MAX_SERVED_DEPTH:
            return []
        return [_prune(item, depth + 1) for item in value]
    return value
