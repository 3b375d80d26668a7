"""Sliding sync's pure parts: the order of a user's rooms, the lists' ranges and filters,
and which state entries `required_state` asks for."""

from __future__ import annotations

from ranvier.services.sliding_sync.request import ListFilters, RoomParams
from ranvier.services.sliding_sync.required_state import combine, select_state
from ranvier.services.sliding_sync.room_list import (
    ListedRoom,
    RoomFacts,
    bump_stamp,
    in_ranges,
    matches,
    sort_rooms,
)

STATE = {
    ("m.room.create", ""): "$create",
    ("m.room.name", ""): "$name",
    ("m.room.member", "@a:x"): "$a",
    ("m.room.member", "@b:x"): "$b",
    ("m.room.member", "@me:x"): "$me",
    ("org.example", "@me:x"): "$mine",
}


def room(room_id: str, stamp: int, membership: str = "join") -> ListedRoom:
    return ListedRoom(room_id, membership, "$m" + room_id, 1, stamp)


def test_the_newest_stamp_first_and_a_stable_order_for_ties() -> None:
    rooms = [room("!b", 5), room("!a", 5), room("!c", 9), room("!d", 1)]
    assert [r.room_id for r in sort_rooms(rooms)] == ["!c", "!a", "!b", "!d"]


def test_a_room_not_joined_sorts_by_the_membership_and_a_stamp_ahead_is_capped() -> None:
    assert bump_stamp("invite", 7, 40, 100) == 7
    assert bump_stamp("join", 7, None, 100) == 7
    assert bump_stamp("join", 7, 40, 100) == 40
    assert bump_stamp("join", 7, 140, 100) == 100
    # a backfilled event's stamp (below zero) places nothing
    assert bump_stamp("join", 7, -3, 100) == 7


def test_ranges_are_inclusive_overlap_once_and_stop_at_the_end() -> None:
    rooms = [room(f"!{i}", 100 - i) for i in range(10)]
    picked = in_ranges(rooms, [(0, 2), (2, 3), (8, 20)])
    assert [r.room_id for r in picked] == ["!0", "!1", "!2", "!3", "!8", "!9"]
    assert in_ranges(rooms, [(12, 20)]) == []


def test_filters() -> None:
    facts = RoomFacts(
        dm_rooms={"!dm"},
        encrypted_rooms={"!secret"},
        room_types={"!space": "m.space", "!dm": None, "!secret": None},
        space_children={"!secret"},
        room_tags={"!dm": {"m.favourite"}},
    )
    dm, secret, space = room("!dm", 1), room("!secret", 2), room("!space", 3, "invite")
    every = [dm, secret, space]

    def kept(**filters: object) -> set[str]:
        wanted = ListFilters(**filters)  # type: ignore[arg-type]
        return {r.room_id for r in every if matches(r, wanted, facts)}

    assert kept() == {"!dm", "!secret", "!space"}
    assert kept(is_dm=True) == {"!dm"}
    assert kept(is_encrypted=False) == {"!dm", "!space"}
    assert kept(is_invite=True) == {"!space"}
    assert kept(room_types=(None,)) == {"!dm", "!secret"}
    assert kept(not_room_types=("m.space",)) == {"!dm", "!secret"}
    assert kept(spaces=("!parent",)) == {"!secret"}
    assert kept(tags=("m.favourite",)) == {"!dm"}
    assert kept(not_tags=("m.favourite",)) == {"!secret", "!space"}


def test_required_state_pairs_wildcards_me_and_lazy() -> None:
    def picked(*pairs: tuple[str, str], senders: tuple[str, ...] = ()) -> set[str]:
        return set(select_state(pairs, STATE, "@me:x", senders).values())

    assert picked(("m.room.name", "")) == {"$name"}
    assert picked(("m.room.member", "*")) == {"$a", "$b", "$me"}
    assert picked(("*", "@me:x")) == {"$me", "$mine"}
    assert picked(("*", "$ME")) == {"$me", "$mine"}
    assert picked(("m.room.member", "$ME")) == {"$me"}
    assert picked(("*", "*")) == set(STATE.values())
    assert picked(("m.room.member", "$LAZY"), senders=("@b:x", "@gone:x")) == {"$b"}
    assert picked(("m.room.member", "$LAZY")) == set()
    assert picked(("m.room.topic", "")) == set()
    # $LAZY left out on request (the state the connection had)
    lazy = (("m.room.member", "$LAZY"),)
    assert select_state(lazy, STATE, "@me:x", ("@b:x",), lazy=False) == {}


def test_a_room_in_several_lists_gets_the_union() -> None:
    merged = combine(
        [
            RoomParams((("m.room.name", ""),), 1),
            RoomParams((("m.room.member", "$LAZY"), ("m.room.name", "")), 10),
        ]
    )
    assert merged == RoomParams((("m.room.name", ""), ("m.room.member", "$LAZY")), 10)
