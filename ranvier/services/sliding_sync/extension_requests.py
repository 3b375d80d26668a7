"""The request side of sliding sync's extensions: each extension's options, checked, and
which rooms a room-scoped extension (account_data, receipts, typing) covers."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ranvier.errors import bad_json

JsonDict = dict[str, Any]
WILDCARD = "*"
# MSC3885 and Synapse: a client may ask for fewer to-device messages, never more
MAX_TO_DEVICE_LIMIT = 100


def enabled(requested: Mapping[str, Any], name: str) -> JsonDict | None:
    """The extension's options when the request enables it, else None (absent, or
    `enabled` false or missing: an extension is off unless asked for)."""
    options = requested.get(name)
    if options is None:
        return None
    if not isinstance(options, dict):
        raise bad_json(f"extensions.{name} must be an object")
    flag = options.get("enabled")
    if flag is not None and not isinstance(flag, bool):
        raise bad_json(f"extensions.{name}.enabled must be a boolean")
    return options if flag else None


def to_device_since(options: Mapping[str, Any]) -> int | None:
    """`since`: the `next_batch` of an earlier answer, a decimal position."""
    since = options.get("since")
    if since is None:
        return None
    if not isinstance(since, str) or not since.isdecimal() or len(since) > 19:
        raise bad_json("extensions.to_device.since must be a next_batch from the server")
    return int(since)


def to_device_limit(options: Mapping[str, Any]) -> int:
    limit = options.get("limit", MAX_TO_DEVICE_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise bad_json("extensions.to_device.limit must be a positive integer")
    return min(limit, MAX_TO_DEVICE_LIMIT)


def _names(options: Mapping[str, Any], key: str, name: str) -> Sequence[str]:
    # as Synapse: a room-scoped extension covers all lists and subscriptions by default
    value = options.get(key, [WILDCARD])
    if value is None:
        return [WILDCARD]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_json(f"extensions.{name}.{key} must be a list of strings")
    return value


def rooms_in_scope(
    options: Mapping[str, Any],
    name: str,
    list_rooms: Mapping[str, Sequence[str]],
    subscribed_rooms: Collection[str],
) -> set[str]:
    """The rooms of this response the extension covers: those of the lists it names
    and of the subscriptions it names, "*" meaning all of them. A name the response
    does not have (a list not requested, a room not subscribed) adds nothing: an
    extension reports only on rooms the response is about."""
    rooms: set[str] = set()
    for list_name in _names(options, "lists", name):
        if list_name == WILDCARD:
            for room_ids in list_rooms.values():
                rooms.update(room_ids)
        else:
            rooms.update(list_rooms.get(list_name, ()))
    subscribed = set(subscribed_rooms)
    for room_id in _names(options, "rooms", name):
        if room_id == WILDCARD:
            rooms.update(subscribed)
        elif room_id in subscribed:
            rooms.add(room_id)
    return rooms
