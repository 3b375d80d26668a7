"""The redaction algorithm, table-driven per room version."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ranvier.protocol.redaction import redact
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

TOP_LEVEL_V1 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts",
    "membership",
}  # fmt: skip
TOP_LEVEL_V11 = TOP_LEVEL_V1 - {"origin", "membership", "prev_state"}

# every content key any version protects for any type, plus one nobody protects
ALL_CONTENT_KEYS = {
    "membership", "join_authorised_via_users_server", "creator", "join_rule", "allow", "ban",
    "events", "events_default", "invite", "kick", "redact", "state_default", "users",
    "users_default", "aliases", "history_visibility", "redacts", "room_version", "body",
}  # fmt: skip

PL_V1 = {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
         "users_default"}  # fmt: skip

# (versions, event type) -> content keys kept; spec: rooms/fragments/v*-redactions
V1_RULES: dict[str, set[str]] = {
    "m.room.member": {"membership"},
    "m.room.create": {"creator"},
    "m.room.join_rules": {"join_rule"},
    "m.room.power_levels": PL_V1,
    "m.room.aliases": {"aliases"},
    "m.room.history_visibility": {"history_visibility"},
    "m.room.redaction": set(),
    "m.room.message": set(),
}
V6_RULES = {**V1_RULES, "m.room.aliases": set()}
# spec: rooms/v8 "Redactions" - `allow` of m.room.join_rules is kept from v8 on
V8_RULES = {**V6_RULES, "m.room.join_rules": {"join_rule", "allow"}}
V9_RULES = {**V8_RULES, "m.room.member": {"membership", "join_authorised_via_users_server"}}
V11_RULES = {
    **V9_RULES,
    "m.room.create": ALL_CONTENT_KEYS,
    "m.room.power_levels": PL_V1 | {"invite"},
    "m.room.redaction": {"redacts"},
}
RULES_BY_VERSION: dict[str, tuple[set[str], dict[str, set[str]]]] = {
    **{v: (TOP_LEVEL_V1, V1_RULES) for v in ("1", "2", "3", "4", "5")},
    **{v: (TOP_LEVEL_V1, V6_RULES) for v in ("6", "7")},
    "8": (TOP_LEVEL_V1, V8_RULES),
    **{v: (TOP_LEVEL_V1, V9_RULES) for v in ("9", "10")},
    **{v: (TOP_LEVEL_V11, V11_RULES) for v in ("11", "12")},
}

CASES = [
    (version, event_type)
    for version in RULES_BY_VERSION
    for event_type in RULES_BY_VERSION[version][1]
]


def test_table_covers_every_known_room_version() -> None:
    assert set(RULES_BY_VERSION) == set(KNOWN_ROOM_VERSIONS)


def _full_event(event_type: str) -> dict[str, Any]:
    event: dict[str, Any] = {key: f"value of {key}" for key in TOP_LEVEL_V1}
    event.update(
        type=event_type,
        content={key: f"content {key}" for key in ALL_CONTENT_KEYS},
        unsigned={"age": 1},
        redacts="$target",
        extra_top_level="dropped everywhere",
    )
    return event


@pytest.mark.parametrize(("version", "event_type"), CASES)
def test_redaction_keeps_exactly_the_listed_keys(version: str, event_type: str) -> None:
    room_version: RoomVersion = KNOWN_ROOM_VERSIONS[version]
    top_level, content_rules = RULES_BY_VERSION[version]
    event = _full_event(event_type)
    before = copy.deepcopy(event)

    redacted = redact(event, room_version)

    assert event == before, "redact must not modify its input"
    assert set(redacted) == top_level
    assert set(redacted["content"]) == content_rules[event_type]
    for key, value in redacted["content"].items():
        assert value == event["content"][key]
    for key in top_level - {"content"}:
        assert redacted[key] == event[key]


@pytest.mark.parametrize("version", ["9", "10"])
def test_third_party_invite_is_dropped_before_v11(version: str) -> None:
    event = {
        "type": "m.room.member",
        "content": {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}},
    }
    assert redact(event, KNOWN_ROOM_VERSIONS[version])["content"] == {"membership": "invite"}


@pytest.mark.parametrize("version", ["11", "12"])
def test_v11_keeps_only_signed_of_third_party_invite(version: str) -> None:
    signed = {"mxid": "@a:b", "token": "t", "signatures": {}}
    event = {
        "type": "m.room.member",
        "content": {
            "membership": "invite",
            "displayname": "gone",
            "third_party_invite": {"display_name": "gone", "signed": signed},
        },
    }
    assert redact(event, KNOWN_ROOM_VERSIONS[version])["content"] == {
        "membership": "invite",
        "third_party_invite": {"signed": signed},
    }
    without_signed = {"type": "m.room.member", "content": {"third_party_invite": {"x": 1}}}
    assert redact(without_signed, KNOWN_ROOM_VERSIONS[version])["content"] == {}


def test_content_missing_or_malformed() -> None:
    v11 = KNOWN_ROOM_VERSIONS["11"]
    assert redact({"type": "m.room.message"}, v11) == {"type": "m.room.message"}
    assert redact({"type": "m.room.message", "content": "x"}, v11)["content"] == "x"
    # a non-string type protects nothing
    assert redact({"type": 5, "content": {"membership": "join"}}, v11)["content"] == {}
