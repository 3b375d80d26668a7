"""The order and validity of a space's children (spec client-server-api "Spaces",
m.space.child), as pure functions of the child events."""

from __future__ import annotations

from typing import Any

from ranvier.services.rooms.hierarchy import is_open, ordered_children


def child(room_id: str, ts: int, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "content": {"via": ["example.org"], **content},
        "sender": "@a:example.org",
        "origin_server_ts": ts,
    }


def order_of(*children: dict[str, Any], suggested_only: bool = False) -> list[str]:
    return [c["state_key"] for c in ordered_children(children, suggested_only=suggested_only)]


def test_order_then_timestamp_then_room_id() -> None:
    assert order_of(
        child("!d", 1),
        child("!c", 1),
        child("!b", 5, order="b"),
        child("!a", 9, order="a"),
        child("!e", 0),
    ) == ["!a", "!b", "!e", "!c", "!d"]
    # equal orders fall back to the timestamp, then the room ID
    assert order_of(
        child("!y", 2, order="x"), child("!x", 2, order="x"), child("!z", 1, order="x")
    ) == [
        "!z",
        "!x",
        "!y",
    ]
    # orders compare by code point, not by locale
    assert order_of(child("!lower", 1, order="a"), child("!upper", 1, order="B")) == [
        "!upper",
        "!lower",
    ]


def test_invalid_orders_count_as_none() -> None:
    too_long = "a" * 51
    assert order_of(
        child("!long", 1, order=too_long),
        child("!unicode", 2, order="é"),
        child("!control", 3, order="a\n"),
        child("!number", 4, order=1),
        child("!fifty", 9, order="z" * 50),
    ) == ["!fifty", "!long", "!unicode", "!control", "!number"]


def test_children_without_via_are_none() -> None:
    bad = [
        {**child("!missing", 1), "content": {}},
        {**child("!empty", 1), "content": {"via": []}},
        {**child("!notalist", 1), "content": {"via": "example.org"}},
        {**child("!numbers", 1), "content": {"via": [1]}},
        {**child("!other", 1), "type": "m.space.parent"},
    ]
    assert order_of(*bad, child("!ok", 1)) == ["!ok"]


def test_suggested_only() -> None:
    children = (child("!s", 2, suggested=True), child("!t", 1, suggested="yes"), child("!u", 0))
    assert order_of(*children, suggested_only=True) == ["!s"]
    assert order_of(*children) == ["!u", "!t", "!s"]


def test_open_rooms() -> None:
    for rule in ("public", "knock", "knock_restricted"):
        assert is_open({"join_rule": rule, "world_readable": False})
    assert is_open({"join_rule": "invite", "world_readable": True})
    for rule in ("invite", "restricted", "private", None):
        assert not is_open({"join_rule": rule, "world_readable": False})
