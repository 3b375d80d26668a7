"""Client filters (spec: client-server-api "Filtering"; definitions/sync_filter.yaml) as typed,
validated values, with the matching rules /sync and /messages apply.

`parse_filter` checks a filter's shape and refuses what the spec's definition forbids; keys
it does not know are kept by the caller (clients send newer or unstable fields) and ignored
here. Matching is pure: it looks at an event's `type`, `sender`, `room_id` and `content`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

# what /sync and /messages use when a filter gives no limit (Synapse's default)
DEFAULT_EVENT_LIMIT = 10

EventFormat = Literal["client", "federation"]


class FilterError(ValueError):
    """The filter does not have the shape the spec defines; the message names the field."""


@lru_cache(maxsize=1024)
def _type_pattern(pattern: str) -> re.Pattern[str]:
    # spec: "A `*` can be used as a wildcard to match any sequence of characters"; nothing
    # else is special
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def type_matches(event_type: str, pattern: str) -> bool:
    if "*" not in pattern:
        return event_type == pattern
    return _type_pattern(pattern).fullmatch(event_type) is not None


@dataclass(frozen=True)
class EventFilter:
    """spec: definitions/event_filter.yaml"""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()

    def limit_or(self, default: int = DEFAULT_EVENT_LIMIT) -> int:
        return self.limit if self.limit is not None else default

    def allows_type(self, event_type: str) -> bool:
        # a matching not_types entry wins over types
        if any(type_matches(event_type, pattern) for pattern in self.not_types):
            return False
        return self.types is None or any(type_matches(event_type, p) for p in self.types)

    def allows_sender(self, sender: str | None) -> bool:
        if sender is not None and sender in self.not_senders:
            return False
        return self.senders is None or sender in self.senders

    def matches(self, event: Mapping[str, Any]) -> bool:
        event_type = event.get("type")
        return (
            isinstance(event_type, str)
            and self.allows_type(event_type)
            and self.allows_sender(event.get("sender"))
        )

    def blocks_everything(self) -> bool:
        """True when no event can pass, so the caller need not load any."""
        return self.types == () or self.senders == () or "*" in self.not_types


@dataclass(frozen=True)
class RoomEventFilter(EventFilter):
    """spec: definitions/room_event_filter.yaml"""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches(self, event: Mapping[str, Any]) -> bool:
        if not super().matches(event):
            return False
        room_id = event.get("room_id")
        if isinstance(room_id, str) and not self.allows_room(room_id):
            return False
        if self.contains_url is not None:
            content = event.get("content")
            has_url = isinstance(content, Mapping) and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True

    def blocks_everything(self) -> bool:
        return super().blocks_everything() or self.rooms == ()


@dataclass(frozen=True)
class RoomFilter:
    """spec: the `room` part of definitions/sync_filter.yaml; `rooms`/`not_rooms` here apply
    before the per-section filters."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    ephemeral: RoomEventFilter = field(default_factory=RoomEventFilter)
    state: RoomEventFilter = field(default_factory=RoomEventFilter)
    timeline: RoomEventFilter = field(default_factory=RoomEventFilter)
    account_data: RoomEventFilter = field(default_factory=RoomEventFilter)

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True)
class Filter:
    """spec: definitions/sync_filter.yaml"""

    event_fields: tuple[str, ...] | None = None
    event_format: EventFormat = "client"
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)


# --- parsing -------------------------------------------------------------------------------


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FilterError(f"{where} must be a JSON object")
    return value


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise FilterError(f"{where}{key} must be true or false")
    return value


def _strings(
    obj: Mapping[str, Any], key: str, where: str, *, sigil: str | None = None, kind: str = ""
) -> tuple[str, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FilterError(f"{where}{key} must be a list of strings")
    if sigil is not None:
        for item in value:
            if not _is_identifier(item, sigil):
                raise FilterError(f"{where}{key} contains {item!r}, which is not a valid {kind}")
    return tuple(value)


def _is_identifier(value: str, sigil: str) -> bool:
    if not value.startswith(sigil) or len(value.encode()) > 255:
        return False
    if sigil == "!":
        # room IDs of room version 12 have no server name part
        return len(value) > 1
    localpart, colon, server = value[1:].partition(":")
    return bool(localpart) and bool(colon) and bool(server)


def _limit(obj: Mapping[str, Any], where: str) -> int | None:
    value = obj.get("limit")
    if value is None:
        return None
    # bool is an int in Python, never in JSON. 0 is accepted, as Synapse does and clients
    # send (SyTest among them): no events, for a sync that wants only state
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FilterError(f"{where}limit must be a whole number, 0 or more")
    return value


def _event_filter_fields(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {
        "limit": _limit(obj, where),
        "types": _strings(obj, "types", where),
        "not_types": _strings(obj, "not_types", where) or (),
        "senders": _strings(obj, "senders", where, sigil="@", kind="user ID"),
        "not_senders": _strings(obj, "not_senders", where, sigil="@", kind="user ID") or (),
    }


def parse_event_filter(value: object, where: str = "") -> EventFilter:
    obj = _object(value, where.rstrip(".") or "the filter")
    return EventFilter(**_event_filter_fields(obj, where))


def parse_room_event_filter(value: object, where: str = "") -> RoomEventFilter:
    obj = _object(value, where.rstrip(".") or "the filter")
    return RoomEventFilter(
        **_event_filter_fields(obj, where),
        rooms=_strings(obj, "rooms", where, sigil="!", kind="room ID"),
        not_rooms=_strings(obj, "not_rooms", where, sigil="!", kind="room ID") or (),
        contains_url=_bool(obj, "contains_url", where),
        lazy_load_members=bool(_bool(obj, "lazy_load_members", where)),
        include_redundant_members=bool(_bool(obj, "include_redundant_members", where)),
        unread_thread_notifications=bool(_bool(obj, "unread_thread_notifications", where)),
    )


def _section(obj: Mapping[str, Any], key: str) -> object:
    # an absent or null section filters nothing
    value = obj.get(key)
    return {} if value is None else value


def parse_room_filter(value: object, where: str = "room.") -> RoomFilter:
    obj = _object(value, where.rstrip("."))
    return RoomFilter(
        rooms=_strings(obj, "rooms", where, sigil="!", kind="room ID"),
        not_rooms=_strings(obj, "not_rooms", where, sigil="!", kind="room ID") or (),
        include_leave=bool(_bool(obj, "include_leave", where)),
        ephemeral=parse_room_event_filter(_section(obj, "ephemeral"), where + "ephemeral."),
        state=parse_room_event_filter(_section(obj, "state"), where + "state."),
        timeline=parse_room_event_filter(_section(obj, "timeline"), where + "timeline."),
        account_data=parse_room_event_filter(
            _section(obj, "account_data"), where + "account_data."
        ),
    )


def parse_filter(value: object) -> Filter:
    """The filter a client uploaded (or sent inline), validated; FilterError if malformed."""
    obj = _object(value, "the filter")
    event_format: EventFormat = "client"
    match obj.get("event_format"):
        case None | "client":
            pass
        case "federation":
            event_format = "federation"
        case _:
            raise FilterError("event_format must be 'client' or 'federation'")
    return Filter(
        event_fields=_strings(obj, "event_fields", ""),
        event_format=event_format,
        presence=parse_event_filter(_section(obj, "presence"), "presence."),
        account_data=parse_event_filter(_section(obj, "account_data"), "account_data."),
        room=parse_room_filter(_section(obj, "room"), "room."),
    )
