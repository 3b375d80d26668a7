"""A user's rooms as sliding sync lists them (MSC4186): which rooms, in which order, and
which of them a list's filters and ranges keep; pure.

A room's `bump_stamp` is the room-events position of its newest event of a type that
should move it up a room list (BUMP_EVENT_TYPES, as Synapse's defaults), kept per room
in storage/sliding_sync.py when events persist. A room the user is not joined to is
placed by their membership event instead: they see nothing after it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ranvier.services.sliding_sync.request import ListFilters

# the event types that move a room up the list (as Synapse's defaults: messages and the
# starts of calls, polls and live location shares; the creation for a new room)
BUMP_EVENT_TYPES = frozenset(
    {
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "m.beacon_info",
    }
)


class ListedRoom(NamedTuple):
    """A tuple, not a dataclass: one is made per room of the user on every request."""

    room_id: str
    # the user's membership: join, invite, knock, or leave/ban for a room left since `pos`
    membership: str
    membership_event_id: str
    membership_stream: int
    bump_stamp: int


def bump_stamp(membership: str, membership_stream: int, stamp: int | None, upto: int) -> int:
    """The position a room sorts by."""
    if membership != "join" or stamp is None or stamp <= 0:
        return membership_stream
    # a stamp written after this response's position is not seen yet
    return min(stamp, upto)


def sort_rooms(rooms: Iterable[ListedRoom]) -> list[ListedRoom]:
    """Newest first; rooms with the same stamp in a stable order."""
    return sorted(rooms, key=lambda room: (-room.bump_stamp, room.room_id))


def in_ranges(rooms: Sequence[ListedRoom], ranges: Iterable[tuple[int, int]]) -> list[ListedRoom]:
    """The rooms at the ranges' indexes (inclusive), each once, in list order."""
    indexes: set[int] = set()
    for start, end in ranges:
        indexes.update(range(max(start, 0), min(end, len(rooms) - 1) + 1))
    return [rooms[i] for i in sorted(indexes)]


@dataclass(frozen=True)
class RoomFacts:
    """What the filters look at, loaded only for the filters a request uses."""

    dm_rooms: Collection[str] = frozenset()
    encrypted_rooms: Collection[str] = frozenset()
    # room ID -> its type (m.space, ...), None for a room without one
    room_types: Mapping[str, str | None] | None = None
    # rooms some space of the filter lists as a child
    space_children: Collection[str] = frozenset()
    # room ID -> the user's tags on it
    room_tags: Mapping[str, Collection[str]] | None = None


def matches(room: ListedRoom, filters: ListFilters, facts: RoomFacts) -> bool:
    if filters.is_dm is not None and (room.room_id in facts.dm_rooms) != filters.is_dm:
        return False
    if (
        filters.is_encrypted is not None
        and (room.room_id in facts.encrypted_rooms) != filters.is_encrypted
    ):
        return False
    if filters.is_invite is not None and (room.membership == "invite") != filters.is_invite:
        return False
    if filters.room_types is not None or filters.not_room_types:
        room_type = (facts.room_types or {}).get(room.room_id)
        if filters.room_types is not None and room_type not in filters.room_types:
            return False
        if room_type in filters.not_room_types:
            return False
    if filters.spaces is not None and room.room_id not in facts.space_children:
        return False
    if filters.tags is not None or filters.not_tags:
        tags = (facts.room_tags or {}).get(room.room_id, ())
        if filters.tags is not None and not any(tag in tags for tag in filters.tags):
            return False
        if any(tag in tags for tag in filters.not_tags):
            return False
    return True
