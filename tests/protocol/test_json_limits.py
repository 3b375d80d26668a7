"""The limits every JSON value from outside keeps, and pruning what predates them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ranvier.protocol.json_limits import (
    MAX_DEPTH,
    JSONLimitError,
    check_json_limits,
    depth_exceeds,
    dumps_for_serving,
    prune_for_serving,
)


def nested(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def test_depth_up_to_the_limit_is_accepted_and_one_more_is_not() -> None:
    check_json_limits(nested(MAX_DEPTH))
    check_json_limits([nested(MAX_DEPTH - 1)])
    with pytest.raises(JSONLimitError, match=f"at most {MAX_DEPTH} levels"):
        check_json_limits(nested(MAX_DEPTH + 1))
    with pytest.raises(JSONLimitError):
        check_json_limits([nested(MAX_DEPTH)])


@pytest.mark.parametrize(
    "number", [2**53 - 1, -(2**53) + 1, 0, 1.5, -1e15, True, None, "9007199254740993"]
)
def test_numbers_in_the_canonical_range_and_other_scalars_pass(number: Any) -> None:
    check_json_limits({"n": number})


@pytest.mark.parametrize("number", [2**53, -(2**53), 2**64, 1.8446744073709552e19, 1e300])
def test_numbers_outside_the_canonical_range_are_refused_with_where(number: Any) -> None:
    with pytest.raises(JSONLimitError) as refused:
        check_json_limits({"content": {"list": [1, {"n": number}]}})
    assert "outside [-(2**53)+1, (2**53)-1]" in str(refused.value)
    assert str(refused.value).endswith("(at content.list[1].n)")


@pytest.mark.parametrize("value", [{"a": ["x\x00y"]}, {"k\x00": 1}, "\x00"])
def test_strings_with_nul_are_refused(value: Any) -> None:
    with pytest.raises(JSONLimitError, match="U\\+0000"):
        check_json_limits(value)


def test_a_long_path_is_shortened_in_the_message() -> None:
    with pytest.raises(JSONLimitError) as refused:
        check_json_limits(nested(MAX_DEPTH + 5))
    assert "..." in str(refused.value)
    assert len(str(refused.value)) < 120


def test_depth_exceeds_counts_objects_and_arrays() -> None:
    assert not depth_exceeds("scalar", 0)
    assert not depth_exceeds({}, 1)
    assert depth_exceeds({}, 0)
    assert depth_exceeds({"a": [{}]}, 2)
    assert not depth_exceeds({"a": [{}]}, 3)


def test_what_serialises_is_served_untouched() -> None:
    value = {"content": nested(MAX_DEPTH + 10), "n": 1}
    assert dumps_for_serving(value) == orjson.dumps(value)


def test_too_deep_content_is_served_empty_and_the_rest_whole() -> None:
    poison = {"event_id": "$p", "content": nested(250), "unsigned": {"prev_content": nested(250)}}
    fine = {"event_id": "$f", "content": {"body": "hi"}}
    response = {"rooms": {"join": {"!r": {"timeline": {"events": [poison, fine]}}}}}
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(response)
    served = orjson.loads(dumps_for_serving(response))
    events = served["rooms"]["join"]["!r"]["timeline"]["events"]
    assert events == [
        {"event_id": "$p", "content": {}, "unsigned": {"prev_content": {}}},
        fine,
    ]


def test_anything_else_too_deep_is_cut_where_nothing_could_write_it() -> None:
    response = {"other": nested(400)}
    pruned = prune_for_serving(response)
    orjson.dumps(pruned)
    assert depth_exceeds(pruned, 150)
