"""The filter model: what parse_filter accepts and refuses, and how filters match events."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.protocol.filters import (
    DEFAULT_EVENT_LIMIT,
    EventFilter,
    Filter,
    FilterError,
    RoomEventFilter,
    parse_filter,
    type_matches,
)

SPEC_EXAMPLE: dict[str, Any] = {
    "room": {
        "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
        "timeline": {
            "limit": 10,
            "types": ["m.room.message"],
            "not_rooms": ["!726s6s6q:example.com"],
            "not_senders": ["@spam:example.com"],
        },
        "ephemeral": {
            "types": ["m.receipt", "m.typing"],
            "not_rooms": ["!726s6s6q:example.com"],
            "not_senders": ["@spam:example.com"],
        },
    },
    "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


def test_the_spec_example_parses() -> None:
    parsed = parse_filter(SPEC_EXAMPLE)
    assert parsed.room.timeline.limit == 10
    assert parsed.room.state.types == ("m.room.*",)
    assert parsed.presence.not_senders == ("@alice:example.com",)
    assert parsed.event_fields == ("type", "content", "sender")


def test_empty_filter_filters_nothing() -> None:
    parsed = parse_filter({})
    assert parsed == Filter()
    assert parsed.room.timeline.limit_or() == DEFAULT_EVENT_LIMIT
    assert parsed.room.timeline.matches({"type": "m.room.message", "sender": "@a:b"})


def test_unknown_keys_and_v12_room_ids_are_accepted() -> None:
    parse_filter({"org.example.new": 1, "room": {"rooms": ["!abcdef"], "x": {}}})


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ([], "the filter"),
        ({"room": []}, "room"),
        ({"room": {"timeline": {"limit": -1}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": "10"}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": 2.5}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": True}}}, "room.timeline.limit"),
        ({"presence": {"types": "m.presence"}}, "presence.types"),
        ({"presence": {"types": [1]}}, "presence.types"),
        ({"presence": {"senders": ["alice"]}}, "presence.senders"),
        ({"room": {"rooms": ["#alias:test"]}}, "room.rooms"),
        ({"room": {"state": {"not_rooms": ["@a:b"]}}}, "room.state.not_rooms"),
        ({"room": {"include_leave": "yes"}}, "room.include_leave"),
        ({"room": {"state": {"lazy_load_members": 1}}}, "room.state.lazy_load_members"),
        ({"event_format": "xml"}, "event_format"),
        ({"event_fields": "type"}, "event_fields"),
    ],
)
def test_malformed_filters_are_refused_naming_the_field(body: Any, where: str) -> None:
    with pytest.raises(FilterError, match=where.replace(".", r"\.")):
        parse_filter(body)


@pytest.mark.parametrize(
    ("event_type", "pattern", "expected"),
    [
        ("m.room.message", "m.room.message", True),
        ("m.room.message", "m.room.*", True),
        ("m.room.message", "*", True),
        ("m.room.message", "m.*.message", True),
        ("m.roomXmessage", "m.room.message", False),
        ("m.room.message", "m.room.mess?ge", False),
        ("m.room.member", "m.room.message*", False),
    ],
)
def test_type_wildcards(event_type: str, pattern: str, expected: bool) -> None:
    assert type_matches(event_type, pattern) is expected


def test_not_lists_win_over_lists() -> None:
    event_filter = EventFilter(
        types=("m.room.*",), not_types=("m.room.member",), senders=("@a:x", "@b:x")
    )
    assert event_filter.matches({"type": "m.room.message", "sender": "@a:x"})
    assert not event_filter.matches({"type": "m.room.member", "sender": "@a:x"})
    assert not event_filter.matches({"type": "m.room.message", "sender": "@c:x"})
    assert not EventFilter(senders=("@a:x",), not_senders=("@a:x",)).allows_sender("@a:x")


def test_room_event_filter_rooms_and_contains_url() -> None:
    room_filter = RoomEventFilter(not_rooms=("!bad:x",), contains_url=True)
    image = {"type": "m.room.message", "room_id": "!ok:x", "content": {"url": "mxc://x/y"}}
    text = {"type": "m.room.message", "room_id": "!ok:x", "content": {"body": "hi"}}
    assert room_filter.matches(image)
    assert not room_filter.matches(text)
    assert not room_filter.matches({**image, "room_id": "!bad:x"})
    assert RoomEventFilter(contains_url=False).matches(text)


def test_blocks_everything() -> None:
    assert parse_filter({"presence": {"types": []}}).presence.blocks_everything()
    assert parse_filter({"presence": {"not_types": ["*"]}}).presence.blocks_everything()
    assert parse_filter({"room": {"timeline": {"rooms": []}}}).room.timeline.blocks_everything()
    assert not parse_filter({}).presence.blocks_everything()
