"""Which state entries an event must cite as its `auth_events`.

spec: server-server-api "Auth events selection"; rooms/v12 (the create event is no longer
selected, because the room ID already names it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.protocol.room_versions import RoomVersion

StateKey = tuple[str, str]

CREATE = "m.room.create"
POWER_LEVELS = "m.room.power_levels"
MEMBER = "m.room.member"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"


def auth_types_for_event(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
) -> set[tuple[str, str]]:
    """The (type, state_key) pairs of current state an event of this shape is authorised by.

    Entries missing from the room's state are simply not cited; the caller looks each pair up.
    """
    # spec: "The auth_events for the m.room.create event in a room is empty"
    if event_type == CREATE and state_key == "":
        return set()

    wanted: set[StateKey] = {(POWER_LEVELS, ""), (MEMBER, sender)}
    # spec: rooms/v12 - the create event is implied by the room ID, so it is not selected
    if not room_version.room_id_from_create_event:
        wanted.add((CREATE, ""))

    if event_type == MEMBER and state_key is not None:
        wanted.add((MEMBER, state_key))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            wanted.add((JOIN_RULES, ""))
        if membership == "invite":
            token = _third_party_invite_token(content)
            if token is not None:
                wanted.add((THIRD_PARTY_INVITE, token))
        if membership == "join" and room_version.restricted_join_rule:
            via = content.get("join_authorised_via_users_server")
            if isinstance(via, str):
                wanted.add((MEMBER, via))
    return wanted


def _third_party_invite_token(content: Mapping[str, Any]) -> str | None:
    invite = content.get("third_party_invite")
    if not isinstance(invite, Mapping):
        return None
    signed = invite.get("signed")
    if not isinstance(signed, Mapping):
        return None
    token = signed.get("token")
    return token if isinstance(token, str) else None
