"""The redaction algorithm: what of an event survives, per room version.

spec: rooms/fragments/v1-redactions (v1-v5), v6-redactions (v6, v7), rooms/v8 "Redactions"
(v8 writes its table out in full), v9-redactions (v9, v10), v11-redactions (v11+).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.protocol.room_versions import RoomVersion

# spec: rooms/v1 redactions - top-level keys kept
_TOP_LEVEL_KEYS_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
# spec: rooms/v11 redactions - `origin`, `membership` and `prev_state` are no longer kept
_TOP_LEVEL_KEYS_V11 = _TOP_LEVEL_KEYS_V1 - {"origin", "membership", "prev_state"}

_POWER_LEVELS_KEYS_V1 = frozenset(
    {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
)

# content keys kept, per event type; "*" keeps the whole content
_CONTENT_KEYS_V1: Mapping[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule"}),
    "m.room.power_levels": _POWER_LEVELS_KEYS_V1,
    "m.room.aliases": frozenset({"aliases"}),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
# spec: rooms/v6 redactions - m.room.aliases loses its protection
_CONTENT_KEYS_V6: Mapping[str, frozenset[str]] = {
    k: v for k, v in _CONTENT_KEYS_V1.items() if k != "m.room.aliases"
}
# spec: rooms/v8 redactions - the restricted join rule's `allow` list survives redaction
_CONTENT_KEYS_V8: Mapping[str, frozenset[str]] = {
    **_CONTENT_KEYS_V6,
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
}
# spec: rooms/v9 redactions - so does the user who authorised a restricted join
_CONTENT_KEYS_V9: Mapping[str, frozenset[str]] = {
    **_CONTENT_KEYS_V8,
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
}
_KEEP_ALL = frozenset({"*"})
# spec: rooms/v11 redactions
_CONTENT_KEYS_V11: Mapping[str, frozenset[str]] = {
    **_CONTENT_KEYS_V9,
    "m.room.create": _KEEP_ALL,
    "m.room.power_levels": _POWER_LEVELS_KEYS_V1 | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


def redact(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """A new dict holding what the redaction algorithm of `room_version` keeps of `pdu`.

    The input is not modified. `unsigned` is dropped like any other non-essential key.
    """
    if room_version.updated_redaction_rules:
        top_level, content_keys = _TOP_LEVEL_KEYS_V11, _CONTENT_KEYS_V11
    elif room_version.restricted_join_rule_fix:
        top_level, content_keys = _TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V9
    elif room_version.restricted_join_rule:
        top_level, content_keys = _TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V8
    elif not room_version.special_case_aliases_auth:
        top_level, content_keys = _TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V6
    else:
        top_level, content_keys = _TOP_LEVEL_KEYS_V1, _CONTENT_KEYS_V1

    redacted = {key: value for key, value in pdu.items() if key in top_level}
    content = pdu.get("content")
    if not isinstance(content, Mapping):
        # a malformed content is not ours to fix; keep whatever was there
        return redacted

    event_type = pdu.get("type")
    allowed = content_keys.get(event_type, frozenset()) if isinstance(event_type, str) else ()
    if allowed == _KEEP_ALL:
        new_content = dict(content)
    else:
        new_content = {key: value for key, value in content.items() if key in allowed}
    if (
        room_version.updated_redaction_rules
        and event_type == "m.room.member"
        and isinstance(content.get("third_party_invite"), Mapping)
        and "signed" in content["third_party_invite"]
    ):
        # spec: rooms/v11 redactions - only `signed` of `third_party_invite` is kept
        new_content["third_party_invite"] = {"signed": content["third_party_invite"]["signed"]}
    redacted["content"] = new_content
    return redacted
