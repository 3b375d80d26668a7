"""The pure rules behind the room directory, aliases and relations: no database, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.rooms.aliases import parse_room_alias
from ranvier.services.rooms.public_rooms import (
    PageToken,
    directory_entry,
    is_listable,
    matches,
    paginate,
    plain_text_topic,
)
from ranvier.services.rooms.relations import (
    format_position,
    is_valid_replacement,
    latest_replacement,
    parse_position,
)
from ranvier.storage.relations import Position

VERSION = KNOWN_ROOM_VERSIONS["11"]
ALICE = "@alice:test.localhost"
BOB = "@bob:test.localhost"


def event(
    event_id: str,
    content: dict[str, Any],
    *,
    sender: str = ALICE,
    event_type: str = "m.room.message",
    ts: int = 1000,
    state_key: str | None = None,
    room_id: str = "!room:test.localhost",
) -> Event:
    pdu: dict[str, Any] = {
        "type": event_type,
        "room_id": room_id,
        "sender": sender,
        "content": content,
        "origin_server_ts": ts,
        "depth": 5,
        "prev_events": [],
        "auth_events": [],
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    return Event(pdu, VERSION, event_id)


# -- aliases -------------------------------------------------------------------------------


def test_parse_room_alias() -> None:
    alias = parse_room_alias("#room:example.org:8448")
    assert (alias.localpart, alias.server_name) == ("room", "example.org:8448")
    assert str(alias) == "#room:example.org:8448"
    for bad in ("room:example.org", "#room", "#:example.org", "#a b:x", "#a#b:x", "#a:", 7, None):
        with pytest.raises(MatrixError) as caught:
            parse_room_alias(bad)
        assert caught.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(MatrixError):
        parse_room_alias("#" + "é" * 127 + ":x")  # 254 characters, 258 bytes


# -- published room directory --------------------------------------------------------------


def test_page_tokens_round_trip_and_refuse_garbage() -> None:
    token = PageToken(False, (12, "!abc:x"))
    assert PageToken.decode(token.encode()) == token
    for bad in ("", "x", "n", "nnot-base64!", PageToken(True, (1, "!a:x")).encode()[:-3] + "zz"):
        with pytest.raises(MatrixError) as caught:
            PageToken.decode(bad)
        assert caught.value.errcode == "M_INVALID_PARAM"


def entries(*keys: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"num_joined_members": joined, "room_id": room_id} for joined, room_id in keys]


def test_paginate_forwards_and_backwards() -> None:
    rooms = entries((5, "!a"), (3, "!b"), (3, "!c"), (1, "!d"), (1, "!e"))
    first = paginate(rooms, 2, None)
    assert [e["room_id"] for e in first["chunk"]] == ["!a", "!b"]
    assert "prev_batch" not in first
    second = paginate(rooms, 2, PageToken.decode(first["next_batch"]))
    assert [e["room_id"] for e in second["chunk"]] == ["!c", "!d"]
    third = paginate(rooms, 2, PageToken.decode(second["next_batch"]))
    assert [e["room_id"] for e in third["chunk"]] == ["!e"]
    assert "next_batch" not in third
    back = paginate(rooms, 2, PageToken.decode(third["prev_batch"]))
    assert [e["room_id"] for e in back["chunk"]] == ["!c", "!d"]
    start = paginate(rooms, 2, PageToken.decode(back["prev_batch"]))
    assert [e["room_id"] for e in start["chunk"]] == ["!a", "!b"]
    assert "prev_batch" not in start
    # a room that left the listing does not derail the next page
    shrunk = [room for room in rooms if room["room_id"] != "!c"]
    assert [
        e["room_id"] for e in paginate(shrunk, 2, PageToken.decode(first["next_batch"]))["chunk"]
    ] == ["!d", "!e"]


def test_directory_entry_from_state() -> None:
    state = {
        "m.room.create": event("$c", {"type": "m.space"}, event_type="m.room.create", state_key=""),
        "m.room.name": event("$n", {"name": "Name"}, event_type="m.room.name", state_key=""),
        "m.room.join_rules": event(
            "$j", {"join_rule": "knock"}, event_type="m.room.join_rules", state_key=""
        ),
        "m.room.guest_access": event(
            "$g", {"guest_access": "can_join"}, event_type="m.room.guest_access", state_key=""
        ),
        "m.room.history_visibility": event(
            "$h",
            {"history_visibility": "world_readable"},
            event_type="m.room.history_visibility",
            state_key="",
        ),
        # an empty name or alias counts as none
        "m.room.canonical_alias": event(
            "$a", {"alias": ""}, event_type="m.room.canonical_alias", state_key=""
        ),
    }
    entry = directory_entry("!r:x", 3, state)
    assert entry == {
        "room_id": "!r:x",
        "num_joined_members": 3,
        "world_readable": True,
        "guest_can_join": True,
        "name": "Name",
        "join_rule": "knock",
        "room_type": "m.space",
    }
    assert is_listable(entry)
    bare = directory_entry("!r:x", 1, {})
    assert bare == {
        "room_id": "!r:x",
        "num_joined_members": 1,
        "world_readable": False,
        "guest_can_join": False,
    }
    # no join rule means public
    assert is_listable(bare)
    assert not is_listable({**bare, "num_joined_members": 0})
    assert not is_listable({**bare, "join_rule": "invite"})
    assert is_listable({**bare, "join_rule": "invite", "world_readable": True})


def test_plain_text_topic() -> None:
    assert plain_text_topic({"topic": "plain"}) == "plain"
    blocks = {
        "topic": "",
        "m.topic": {
            "m.text": [
                {"mimetype": "text/html", "body": "<b>rich</b>"},
                {"body": "fallback"},
            ]
        },
    }
    assert plain_text_topic(blocks) == "fallback"
    assert (
        plain_text_topic({"m.topic": {"m.text": [{"mimetype": "text/html", "body": "x"}]}}) is None
    )
    assert plain_text_topic({"topic": 5}) is None


def test_search_and_room_type_filters() -> None:
    entry = {"room_id": "!r:x", "name": "Cheese Lovers", "topic": "brie", "room_type": "m.space"}
    assert matches(entry, "cheese", None)
    assert matches(entry, "BRIE", None)
    assert matches(entry, "!r:x", None)
    assert not matches(entry, "wine", None)
    assert matches(entry, None, ["m.space"])
    assert matches(entry, None, [])
    assert not matches(entry, None, [None])
    assert matches({"room_id": "!s:x"}, None, [None, "m.space"])


# -- relations -----------------------------------------------------------------------------


def test_position_tokens() -> None:
    assert parse_position("t12-345") == Position(12, 345)
    assert parse_position("s345") == Position(None, 345)
    assert parse_position("s345_7_9") == Position(None, 345)
    for position in (Position(3, 9), Position(None, 9)):
        assert parse_position(format_position(position)) == position
    for bad in ("", "t12", "t-345", "x1", "s", "t1-2-3"):
        with pytest.raises(MatrixError) as caught:
            parse_position(bad)
        assert caught.value.errcode == "M_INVALID_PARAM"


def replacement(event_id: str, ts: int, **overrides: Any) -> Event:
    content = {"body": "* new", "m.new_content": {"body": "new"}}
    content.update(overrides.pop("content", {}))
    return event(event_id, content, ts=ts, **overrides)


def test_replacement_validity() -> None:
    original = event("$o", {"body": "old"})
    assert is_valid_replacement(original, replacement("$e", 2000))
    assert not is_valid_replacement(original, replacement("$e", 2000, sender=BOB))
    assert not is_valid_replacement(original, replacement("$e", 2000, event_type="m.sticker"))
    assert not is_valid_replacement(original, replacement("$e", 2000, room_id="!other:x"))
    assert not is_valid_replacement(original, replacement("$e", 2000, state_key=""))
    no_new_content = event("$e", {"body": "* new"}, ts=2000)
    assert not is_valid_replacement(original, no_new_content)
    edit_of_edit = event(
        "$o2", {"body": "x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}
    )
    assert not is_valid_replacement(edit_of_edit, replacement("$e", 2000))
    encrypted = event("$x", {"ciphertext": "..."}, event_type="m.room.encrypted")
    assert is_valid_replacement(
        encrypted, event("$y", {"ciphertext": "..."}, event_type="m.room.encrypted")
    )


def test_latest_replacement_by_timestamp_then_event_id() -> None:
    original = event("$o", {"body": "old"})
    early, late_a, late_b = (
        replacement("$early", 2000),
        replacement("$aaa", 3000),
        replacement("$bbb", 3000),
    )
    invalid_newer = replacement("$zzz", 9000, sender=BOB)
    assert latest_replacement(original, [late_b, early, late_a, invalid_newer]) == late_b
    assert latest_replacement(original, [invalid_newer]) is None
