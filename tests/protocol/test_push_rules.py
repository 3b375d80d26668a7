"""Push rule evaluation, table-driven against the spec's condition definitions and the
spec's default ruleset (client-server-api "Push Rules")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ranvier.protocol.push_rules import (
    InvalidRule,
    PushContext,
    RuleSettings,
    build_ruleset,
    check_rule_body,
    clean_actions,
    condition_matches,
    evaluate,
    glob_matches,
    lookup,
    outcome,
    split_dotted_key,
    tweaks,
)

ME = "@me:example.org"
# the spec's default rules (client-server-api/modules/push.md), copied into the project
SPEC_DEFAULT_RULES = Path(__file__).parent / "spec" / "push_default_rules.json"


def ctx(**changes: Any) -> PushContext:
    base: dict[str, Any] = {
        "user_id": ME,
        "display_name": "Alice Liddell",
        "member_count": 3,
        "sender_power_level": 0,
        "notification_levels": {"room": 50},
    }
    base.update(changes)
    return PushContext(**base)


def message(body: str = "hello", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!r:example.org",
        "sender": "@them:example.org",
        "event_id": "$e",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def spec_defaults() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The spec's default override and underride rules, in order, for the user ME."""
    text = SPEC_DEFAULT_RULES.read_text().replace("[the user's Matrix ID]", ME)
    rules = json.loads(text)
    return rules["override"], rules["underride"]


def test_default_ruleset_equals_the_spec() -> None:
    ruleset = build_ruleset(ME, {}, {})
    override, underride = spec_defaults()
    assert ruleset["override"] == override
    assert ruleset["underride"] == underride
    assert ruleset["content"] == ruleset["room"] == ruleset["sender"] == []


def test_user_rules_rank_below_master_and_above_defaults() -> None:
    ruleset = build_ruleset(
        ME,
        {
            "override": [{"rule_id": "mine", "actions": ["notify"], "conditions": []}],
            "underride": [{"rule_id": "low", "actions": [], "conditions": []}],
            "content": [{"rule_id": "c", "actions": ["notify"], "pattern": "cake"}],
        },
        {".m.rule.master": RuleSettings(enabled=True), "c": RuleSettings(actions=[])},
    )
    assert [r["rule_id"] for r in ruleset["override"][:3]] == [
        ".m.rule.master",
        "mine",
        ".m.rule.suppress_notices",
    ]
    assert ruleset["override"][0]["enabled"] is True
    assert ruleset["underride"][0]["rule_id"] == "low"
    assert ruleset["content"] == [
        {"rule_id": "c", "default": False, "enabled": True, "actions": [], "pattern": "cake"}
    ]


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("content.body", ["content", "body"]),
        ("content.m\\.relates_to.rel_type", ["content", "m.relates_to", "rel_type"]),
        ("content.m\\\\foo", ["content", "m\\foo"]),
        ("content.m\\xfoo", ["content", "m\\xfoo"]),
    ],
)
def test_dotted_keys_with_escapes(key: str, parts: list[str]) -> None:
    assert split_dotted_key(key) == parts


@pytest.mark.parametrize(
    ("pattern", "value", "word_boundary", "matches"),
    [
        ("lunc?*", "Lunch plans", False, True),
        ("lunc?*", "LUNCH", False, True),
        ("lunc?*", " lunch", False, False),
        ("lunc?*", "lunc", False, False),
        ("ex*ple", "An example event.", True, True),
        ("ex*ple", "exple", True, True),
        ("ex*ple", "An exciting triple-whammy", True, True),
        ("cake", "cakes are good", True, False),
        ("cake", "I like cake!", True, True),
        ("m.notice", "m.notice", False, True),
        ("m.notice", "mxnotice", False, False),
    ],
)
def test_glob(pattern: str, value: str, word_boundary: bool, matches: bool) -> None:
    assert glob_matches(pattern, value, word_boundary=word_boundary) is matches


CONDITIONS: list[tuple[str, dict[str, Any], dict[str, Any], PushContext, bool]] = [
    (
        "event_match type",
        {"kind": "event_match", "key": "type", "pattern": "m.room.*"},
        message(),
        ctx(),
        True,
    ),
    (
        "event_match absent key",
        {"kind": "event_match", "key": "content.topic", "pattern": "*"},
        message(),
        ctx(),
        False,
    ),
    (
        "event_match non-string",
        {"kind": "event_match", "key": "content.n", "pattern": "*"},
        message(n=1),
        ctx(),
        False,
    ),
    (
        "event_property_is true",
        {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
        message(**{"m.mentions": {"room": True}}),
        ctx(),
        True,
    ),
    (
        "event_property_is no casting",
        {"kind": "event_property_is", "key": "content.x", "value": True},
        message(x=1),
        ctx(),
        False,
    ),
    (
        "event_property_is string vs bool",
        {"kind": "event_property_is", "key": "content.x", "value": True},
        message(x="true"),
        ctx(),
        False,
    ),
    (
        "event_property_is null",
        {"kind": "event_property_is", "key": "content.x", "value": None},
        message(x=None),
        ctx(),
        True,
    ),
    (
        "event_property_contains",
        {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": ME},
        message(**{"m.mentions": {"user_ids": ["@x:y", ME]}}),
        ctx(),
        True,
    ),
    (
        "event_property_contains partial",
        {"kind": "event_property_contains", "key": "content.aliases", "value": ":example.com"},
        message(aliases=["#a:example.com"]),
        ctx(),
        False,
    ),
    (
        "event_property_contains not a list",
        {"kind": "event_property_contains", "key": "content.aliases", "value": "a"},
        message(aliases="a"),
        ctx(),
        False,
    ),
    (
        "contains_display_name",
        {"kind": "contains_display_name"},
        message("hey alice liddell, lunch?"),
        ctx(),
        True,
    ),
    (
        "contains_display_name inside a word",
        {"kind": "contains_display_name"},
        message("xAlice Liddellx"),
        ctx(),
        False,
    ),
    (
        "contains_display_name without a name",
        {"kind": "contains_display_name"},
        message("hey"),
        ctx(display_name=None),
        False,
    ),
    (
        "room_member_count ==",
        {"kind": "room_member_count", "is": "2"},
        message(),
        ctx(member_count=2),
        True,
    ),
    (
        "room_member_count == miss",
        {"kind": "room_member_count", "is": "==2"},
        message(),
        ctx(member_count=3),
        False,
    ),
    (
        "room_member_count <",
        {"kind": "room_member_count", "is": "<3"},
        message(),
        ctx(member_count=2),
        True,
    ),
    (
        "room_member_count >",
        {"kind": "room_member_count", "is": ">3"},
        message(),
        ctx(member_count=3),
        False,
    ),
    (
        "room_member_count <=",
        {"kind": "room_member_count", "is": "<=3"},
        message(),
        ctx(member_count=3),
        True,
    ),
    (
        "room_member_count >=",
        {"kind": "room_member_count", "is": ">=4"},
        message(),
        ctx(member_count=3),
        False,
    ),
    (
        "room_member_count garbage",
        {"kind": "room_member_count", "is": "two"},
        message(),
        ctx(member_count=2),
        False,
    ),
    (
        "sender_notification_permission allowed",
        {"kind": "sender_notification_permission", "key": "room"},
        message(),
        ctx(sender_power_level=50),
        True,
    ),
    (
        "sender_notification_permission refused",
        {"kind": "sender_notification_permission", "key": "room"},
        message(),
        ctx(sender_power_level=49),
        False,
    ),
    ("unknown condition", {"kind": "org.example.magic"}, message(), ctx(), False),
]


@pytest.mark.parametrize(
    ("condition", "event", "context", "expected"),
    [case[1:] for case in CONDITIONS],
    ids=[case[0] for case in CONDITIONS],
)
def test_conditions(
    condition: dict[str, Any], event: dict[str, Any], context: PushContext, expected: bool
) -> None:
    assert condition_matches(condition, event, context) is expected


DEFAULTS = build_ruleset(ME, {}, {})


@pytest.mark.parametrize(
    ("event", "context", "notify", "highlight"),
    [
        (message(), ctx(), True, False),
        (message(), ctx(member_count=2), True, False),
        (message(msgtype="m.notice"), ctx(), False, False),
        (message(**{"m.mentions": {"user_ids": [ME]}}), ctx(), True, True),
        (message(**{"m.mentions": {"room": True}}), ctx(sender_power_level=50), True, True),
        (message(**{"m.mentions": {"room": True}}), ctx(sender_power_level=0), True, False),
        (
            message(**{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
            ctx(),
            False,
            False,
        ),
        ({"type": "m.reaction", "sender": "@t:x", "content": {}}, ctx(), False, False),
        (
            {
                "type": "m.room.member",
                "state_key": ME,
                "sender": "@t:x",
                "content": {"membership": "invite"},
            },
            ctx(),
            True,
            False,
        ),
        (
            {
                "type": "m.room.member",
                "state_key": "@other:x",
                "sender": "@t:x",
                "content": {"membership": "join"},
            },
            ctx(),
            False,
            False,
        ),
        (
            {
                "type": "m.room.tombstone",
                "state_key": "",
                "sender": "@t:x",
                "content": {"body": "moved"},
            },
            ctx(),
            True,
            True,
        ),
        ({"type": "m.room.encrypted", "sender": "@t:x", "content": {}}, ctx(), True, False),
        ({"type": "m.call.invite", "sender": "@t:x", "content": {}}, ctx(), True, False),
        (
            {"type": "m.room.topic", "state_key": "", "sender": "@t:x", "content": {"topic": "x"}},
            ctx(),
            False,
            False,
        ),
    ],
)
def test_default_rules_outcomes(
    event: dict[str, Any], context: PushContext, notify: bool, highlight: bool
) -> None:
    result = outcome(evaluate(DEFAULTS, event, context))
    assert (result.notify, result.highlight) == (notify, highlight)


def test_master_rule_silences_everything() -> None:
    ruleset = build_ruleset(ME, {}, {".m.rule.master": RuleSettings(enabled=True)})
    assert evaluate(ruleset, message(**{"m.mentions": {"user_ids": [ME]}}), ctx()) == []


def test_room_sender_and_content_rules() -> None:
    ruleset = build_ruleset(
        ME,
        {
            "room": [{"rule_id": "!quiet:example.org", "actions": []}],
            "sender": [
                {"rule_id": "@boss:example.org", "actions": ["notify", {"set_tweak": "highlight"}]}
            ],
            "content": [
                {
                    "rule_id": "cake",
                    "pattern": "cake*",
                    "actions": ["notify", {"set_tweak": "sound", "value": "bing"}],
                }
            ],
        },
        {},
    )
    quiet = {**message(), "room_id": "!quiet:example.org"}
    assert evaluate(ruleset, quiet, ctx()) == []
    boss = {**message(), "sender": "@boss:example.org"}
    assert outcome(evaluate(ruleset, boss, ctx())).highlight is True
    assert tweaks(evaluate(ruleset, message("cakes for all"), ctx())) == {"sound": "bing"}


def test_disabled_rules_never_match_and_historical_actions_are_ignored() -> None:
    ruleset = build_ruleset(ME, {}, {".m.rule.message": RuleSettings(enabled=False)})
    assert evaluate(ruleset, message(), ctx()) == []
    # kept as sent, so a client reads back what it wrote; evaluation ignores them
    assert clean_actions(["dont_notify", "coalesce", "notify"]) == [
        "dont_notify",
        "coalesce",
        "notify",
    ]
    for historical in (["dont_notify"], ["coalesce"], ["coalesce", "dont_notify"]):
        quiet = build_ruleset(ME, {}, {".m.rule.message": RuleSettings(actions=historical)})
        assert evaluate(quiet, message(), ctx()) == []
        assert outcome(evaluate(quiet, message(), ctx())).notify is False
    with pytest.raises(InvalidRule):
        clean_actions(["explode"])
    with pytest.raises(InvalidRule):
        clean_actions("notify")


def test_rule_bodies_by_kind() -> None:
    assert check_rule_body("content", "c", {"actions": [], "pattern": "x"}) == {
        "rule_id": "c",
        "actions": [],
        "pattern": "x",
    }
    with pytest.raises(InvalidRule):
        check_rule_body("content", "c", {"actions": []})
    with pytest.raises(InvalidRule):
        check_rule_body("override", "o", {"actions": [], "conditions": [{"key": "type"}]})
    assert check_rule_body("room", "!r:x", {"actions": ["notify"]}) == {
        "rule_id": "!r:x",
        "actions": ["notify"],
    }


def test_lookup_missing_and_highlight_false() -> None:
    assert lookup({"a": {"b": 1}}, "a.c") is not None  # a sentinel, not a value
    assert outcome(["notify", {"set_tweak": "highlight", "value": False}]).highlight is False
