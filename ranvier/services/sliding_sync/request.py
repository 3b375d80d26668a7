"""A sliding sync request (MSC4186) as the service receives it: validated at the edge
(api/client/sliding_sync.py), typed here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
# (event type, state key); either may be "*", the key "$ME" or "$LAZY"
StatePair = tuple[str, str]


@dataclass(frozen=True)
class RoomParams:
    """What to send of each room: a list's or a subscription's."""

    required_state: tuple[StatePair, ...] = ()
    timeline_limit: int = 0


@dataclass(frozen=True)
class ListFilters:
    """MSC4186 list filters; None: not filtered on."""

    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    # None in a list stands for rooms without a type
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    spaces: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListRequest:
    # inclusive index pairs into the sorted list
    ranges: tuple[tuple[int, int], ...]
    params: RoomParams
    filters: ListFilters = field(default_factory=ListFilters)


@dataclass(frozen=True)
class SlidingSyncRequest:
    user_id: str
    device_id: str | None
    conn_id: str
    pos: str | None
    timeout_ms: int
    lists: Mapping[str, ListRequest]
    room_subscriptions: Mapping[str, RoomParams]
    extensions: JsonDict
