"""Room versions 1-12 as data: every algorithm switches on these flags, never on the identifier.

spec: content/rooms/v1.md .. v12.md
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EventFormat(Enum):
    # v1, v2: event_id is a field of the PDU, `$localpart:server`
    V1 = 1
    # v3: event ID is the reference hash, standard unpadded base64
    V3 = 3
    # v4+: event ID is the reference hash, URL-safe unpadded base64
    V4 = 4


class StateResAlgorithm(Enum):
    V1 = "v1"
    V2 = "v2"
    # room version 12: v2 with an empty starting state for the conflicted subgraph
    V2_1 = "v2.1"


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    event_format: EventFormat
    state_res: StateResAlgorithm
    # v5+: signing keys must be valid at origin_server_ts
    enforce_key_validity: bool
    # v1-v5: m.room.aliases has its own auth rule
    special_case_aliases_auth: bool
    # v6+: integers outside [-(2**53)+1, 2**53-1] and floats are rejected
    strict_canonicaljson: bool
    # v6+: notifications power levels are checked when changing power levels
    limit_notifications_power_levels: bool
    # v7+
    knock_join_rule: bool
    # v8+
    restricted_join_rule: bool
    # v9+: join_authorised_via_users_server survives redaction
    restricted_join_rule_fix: bool
    # v10+
    knock_restricted_join_rule: bool
    # v10+: power levels must be real integers, not strings
    enforce_int_power_levels: bool
    # v11+: the creator is the create event's sender; `creator` is gone from the content
    implicit_room_creator: bool
    # v11+: redaction algorithm of rooms/v11
    updated_redaction_rules: bool
    # v12: room ID is `!` + the create event's reference hash; create has no room_id
    room_id_from_create_event: bool
    # v12: creators (sender + additional_creators) have infinite power
    privileged_creators: bool


def _version(identifier: str, **overrides: object) -> RoomVersion:
    base: dict[str, object] = dict(
        identifier=identifier,
        event_format=EventFormat.V1,
        state_res=StateResAlgorithm.V1,
        enforce_key_validity=False,
        special_case_aliases_auth=True,
        strict_canonicaljson=False,
        limit_notifications_power_levels=False,
        knock_join_rule=False,
        restricted_join_rule=False,
        restricted_join_rule_fix=False,
        knock_restricted_join_rule=False,
        enforce_int_power_levels=False,
        implicit_room_creator=False,
        updated_redaction_rules=False,
        room_id_from_create_event=False,
        privileged_creators=False,
    )
    base.update(overrides)
    return RoomVersion(**base)  # type: ignore[arg-type]


V1 = _version("1")
V2 = _version("2", state_res=StateResAlgorithm.V2)
V3 = _version("3", state_res=StateResAlgorithm.V2, event_format=EventFormat.V3)
V4 = _version("4", state_res=StateResAlgorithm.V2, event_format=EventFormat.V4)
V5 = _version(
    "5", state_res=StateResAlgorithm.V2, event_format=EventFormat.V4, enforce_key_validity=True
)
_V6_FLAGS: dict[str, object] = dict(
    state_res=StateResAlgorithm.V2,
    event_format=EventFormat.V4,
    enforce_key_validity=True,
    special_case_aliases_auth=False,
    strict_canonicaljson=True,
    limit_notifications_power_levels=True,
)
V6 = _version("6", **_V6_FLAGS)
V7 = _version("7", **dict(_V6_FLAGS, knock_join_rule=True))
V8 = _version("8", **dict(_V6_FLAGS, knock_join_rule=True, restricted_join_rule=True))
_V9_FLAGS = dict(
    _V6_FLAGS, knock_join_rule=True, restricted_join_rule=True, restricted_join_rule_fix=True
)
V9 = _version("9", **_V9_FLAGS)
_V10_FLAGS = dict(_V9_FLAGS, knock_restricted_join_rule=True, enforce_int_power_levels=True)
V10 = _version("10", **_V10_FLAGS)
_V11_FLAGS = dict(_V10_FLAGS, implicit_room_creator=True, updated_redaction_rules=True)
V11 = _version("11", **_V11_FLAGS)
V12 = _version(
    "12",
    **dict(
        _V11_FLAGS,
        state_res=StateResAlgorithm.V2_1,
        room_id_from_create_event=True,
        privileged_creators=True,
    ),
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}

# spec: "servers SHOULD use room version 12 as the default" (rooms/_index.md)
DEFAULT_ROOM_VERSION = V12
