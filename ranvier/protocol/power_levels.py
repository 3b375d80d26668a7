"""Power levels as the auth rules see them: parsed once, with defaults and room creators.

spec: client-server-api m.room.power_levels (defaults); rooms/v1 "stringy" and "floaty" power
levels; rooms/v10 (integers only); rooms/v12 (creators have infinite power).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion

# A user's level: an int, or `math.inf` for the creators of a v12 room.
Level = int | float

INFINITE = math.inf

# spec: client-server-api m.room.power_levels - the defaults of each property
DEFAULT_USERS = 0
DEFAULT_EVENTS = 0
DEFAULT_STATE = 50
DEFAULT_BAN = 50
DEFAULT_KICK = 50
DEFAULT_REDACT = 50
DEFAULT_INVITE = 0
DEFAULT_ROOM_NOTIFICATION = 50
# spec: "If the room contains no m.room.power_levels event, the room's creator has a power level
# of 100" (room versions 1-11)
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100

SCALAR_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
_SCALAR_DEFAULTS = {
    "users_default": DEFAULT_USERS,
    "events_default": DEFAULT_EVENTS,
    "state_default": DEFAULT_STATE,
    "ban": DEFAULT_BAN,
    "redact": DEFAULT_REDACT,
    "kick": DEFAULT_KICK,
    "invite": DEFAULT_INVITE,
}

# spec: rooms/v1 stringy power levels - optional whitespace, one sign, base-10 digits
_STRINGY_INT = re.compile(r"^\s*[+-]?[0-9]+\s*$")
# spec: appendices canonical JSON - the integer range every room version can represent
_MAX_SAFE = 2**53 - 1


def parse_level(value: Any, room_version: RoomVersion) -> int | None:
    """The integer a power level value stands for, or None if this room version refuses it."""
    if isinstance(value, bool):
        # JSON true/false are not numbers, even though Python's bool is an int
        return None
    if isinstance(value, int):
        return value
    if room_version.enforce_int_power_levels:
        # spec: rooms/v10 "power levels MUST NOT be represented as strings"
        return None
    if isinstance(value, str):
        if _STRINGY_INT.match(value) is None:
            return None
        return int(value.strip())
    if isinstance(value, float) and not room_version.strict_canonicaljson:
        # spec: rooms/v1 floaty power levels - truncate; infinities and NaN are refused
        if not math.isfinite(value):
            return None
        return int(value)
    return None


def is_valid_user_id(user_id: Any) -> bool:
    """The user ID grammar as far as the auth rules need it: `@localpart:server`, <= 255 bytes.

    spec: appendices "User Identifiers" (historical localparts are accepted, as rooms keep them).
    """
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return False
    if len(user_id.encode("utf-8")) > 255:
        return False
    localpart, sep, server = user_id[1:].partition(":")
    return bool(sep) and bool(localpart) and bool(server)


def room_creators(room_version: RoomVersion, create_event: Event | None) -> frozenset[str]:
    """The users the room was created by, per room version.

    spec: rooms/v1..v10 `content.creator`; rooms/v11 the create event's sender; rooms/v12 the
    sender plus `content.additional_creators`.
    """
    if create_event is None:
        return frozenset()
    if not room_version.implicit_room_creator:
        creator = create_event.content.get("creator")
        return frozenset([creator]) if isinstance(creator, str) else frozenset()
    creators = {create_event.sender}
    if room_version.privileged_creators:
        extra = create_event.content.get("additional_creators")
        if isinstance(extra, list):
            creators.update(user for user in extra if isinstance(user, str))
    return frozenset(creators)


@dataclass(frozen=True, slots=True)
class PowerLevels:
    """The effective levels in a room: a power levels event's content with every default filled."""

    room_version: RoomVersion
    has_event: bool
    users: Mapping[str, int] = field(default_factory=dict)
    users_default: int = DEFAULT_USERS
    events: Mapping[str, int] = field(default_factory=dict)
    events_default: int = DEFAULT_EVENTS
    state_default: int = DEFAULT_STATE
    ban: int = DEFAULT_BAN
    kick: int = DEFAULT_KICK
    redact: int = DEFAULT_REDACT
    invite: int = DEFAULT_INVITE
    notifications: Mapping[str, int] = field(default_factory=dict)
    creators: frozenset[str] = frozenset()

    @classmethod
    def from_events(
        cls,
        room_version: RoomVersion,
        create_event: Event | None,
        power_levels_event: Event | None,
    ) -> PowerLevels:
        creators = room_creators(room_version, create_event)
        if power_levels_event is None:
            return cls(room_version=room_version, has_event=False, creators=creators)
        return cls.from_content(room_version, power_levels_event.content, creators)

    @classmethod
    def from_content(
        cls,
        room_version: RoomVersion,
        content: Mapping[str, Any],
        creators: frozenset[str] = frozenset(),
    ) -> PowerLevels:
        """Levels from a content dict; values this room version refuses fall back to defaults."""
        scalars = {
            key: _level_or(content.get(key), default, room_version)
            for key, default in _SCALAR_DEFAULTS.items()
        }
        return cls(
            room_version=room_version,
            has_event=True,
            users=_level_map(content.get("users"), room_version),
            events=_level_map(content.get("events"), room_version),
            notifications=_level_map(content.get("notifications"), room_version),
            creators=creators,
            **scalars,
        )

    def user_level(self, user_id: str) -> Level:
        # spec: rooms/v12 - creators have infinitely high power, with or without power levels
        if self.room_version.privileged_creators and user_id in self.creators:
            return INFINITE
        if not self.has_event:
            if user_id in self.creators:
                return CREATOR_LEVEL_WITHOUT_POWER_LEVELS
            return DEFAULT_USERS
        return self.users.get(user_id, self.users_default)

    def send_level(self, event_type: str, is_state: bool) -> int:
        """The level required to send an event of this type ("required power level")."""
        default = self.state_default if is_state else self.events_default
        return self.events.get(event_type, default)

    def notification_level(self, key: str) -> int:
        default = DEFAULT_ROOM_NOTIFICATION if key == "room" else DEFAULT_USERS
        return self.notifications.get(key, default)


def _level_or(value: Any, default: int, room_version: RoomVersion) -> int:
    if value is None:
        return default
    parsed = parse_level(value, room_version)
    return default if parsed is None else parsed


def _level_map(value: Any, room_version: RoomVersion) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    levels: dict[str, int] = {}
    for key, raw in value.items():
        parsed = parse_level(raw, room_version)
        if isinstance(key, str) and parsed is not None:
            levels[key] = parsed
    return levels


def power_levels_content_errors(
    room_version: RoomVersion, content: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """Structural problems of a power levels content, as (check, description) pairs.

    The checks are "ints" (v10+ scalar properties), "maps" (v10+ `events`/`notifications`) and
    "users" (every version), matching auth rules 9.1-9.3 of rooms/v10 and 10.1 of rooms/v1.
    """
    errors: list[tuple[str, str]] = []
    if room_version.enforce_int_power_levels:
        for key in SCALAR_KEYS:
            if key in content and parse_level(content[key], room_version) is None:
                errors.append(("ints", f"`{key}` is not an integer"))
        for key in ("events", "notifications"):
            if key not in content:
                continue
            value = content[key]
            if not isinstance(value, Mapping) or any(
                parse_level(v, room_version) is None for v in value.values()
            ):
                errors.append(("maps", f"`{key}` is not an object of integers"))
    users = content.get("users")
    if users is not None:
        if not isinstance(users, Mapping):
            errors.append(("users", "`users` is not an object"))
        else:
            for user_id, level in users.items():
                if not is_valid_user_id(user_id):
                    errors.append(("users", f"`users` key {user_id!r} is not a user ID"))
                elif parse_level(level, room_version) is None:
                    errors.append(("users", f"`users` level of {user_id} is not an integer"))
    return errors
