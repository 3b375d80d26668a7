"""Push rules: the spec's server-default ruleset and the evaluation of rules against an event.

spec: client-server-api "Push Rules" (v1.17, where the legacy body-matching defaults
`.m.rule.contains_display_name`, `.m.rule.roomnotif` and `.m.rule.contains_user_name` were
removed; the `contains_display_name` condition is still evaluated for user rules).

Pure: rules and events are plain JSON dicts; what the evaluation needs to know about the
room (member count, display name, power levels) comes in a `PushContext`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

JsonDict = dict[str, Any]

KINDS = ("override", "content", "room", "sender", "underride")
# kinds whose rules are matched by their own `conditions`
CONDITION_KINDS = ("override", "underride")
MASTER = ".m.rule.master"
# spec: "Historical Actions" - ignored wherever they are found
HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})
# spec: event_property_is / _contains only compare canonical JSON integers
MAX_SAFE_INT = 2**53 - 1

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> JsonDict:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(
    rule_id: str, conditions: list[JsonDict], actions: list[Any], enabled: bool = True
) -> JsonDict:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": enabled,
        "conditions": conditions,
        "actions": actions,
    }


def default_override_rules(user_id: str) -> list[JsonDict]:
    """spec: "Default Override Rules", in the spec's order (`.m.rule.master` first)."""
    return [
        _rule(MASTER, [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", user_id),
            ],
            ["notify", dict(_SOUND_DEFAULT)],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": user_id,
                }
            ],
            ["notify", dict(_SOUND_DEFAULT), dict(_HIGHLIGHT)],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ]


def default_underride_rules() -> list[JsonDict]:
    """spec: "Default Underride Rules", in the spec's order."""
    one_to_one = {"kind": "room_member_count", "is": "2"}
    return [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [dict(one_to_one), _match("type", "m.room.encrypted")],
            ["notify", dict(_SOUND_DEFAULT)],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [dict(one_to_one), _match("type", "m.room.message")],
            ["notify", dict(_SOUND_DEFAULT)],
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ]


def default_rule_ids() -> dict[str, str]:
    """rule_id -> kind of every server-default rule."""
    ids = {rule["rule_id"]: "override" for rule in default_override_rules("")}
    ids.update({rule["rule_id"]: "underride" for rule in default_underride_rules()})
    return ids


@dataclass(frozen=True)
class RuleSettings:
    """A user's changes to one rule: None keeps the rule's own value."""

    enabled: bool | None = None
    actions: list[Any] | None = None


def build_ruleset(
    user_id: str,
    user_rules: Mapping[str, Sequence[JsonDict]],
    settings: Mapping[str, RuleSettings],
) -> JsonDict:
    """The user's global ruleset as clients see it. `user_rules` maps kind -> the user's own
    rules, most important first, as {"rule_id", "actions", "conditions"?, "pattern"?};
    `settings` are per rule_id enabled/actions changes, for user and default rules alike.

    spec: server-default rules rank below user rules except `.m.rule.master`, which ranks
    above everything.
    """
    defaults_override = default_override_rules(user_id)
    ruleset: JsonDict = {kind: [] for kind in KINDS}
    ordered: dict[str, list[JsonDict]] = {
        "override": [
            defaults_override[0],
            *[_user_rule("override", r) for r in user_rules.get("override", ())],
            *defaults_override[1:],
        ],
        "content": [_user_rule("content", r) for r in user_rules.get("content", ())],
        "room": [_user_rule("room", r) for r in user_rules.get("room", ())],
        "sender": [_user_rule("sender", r) for r in user_rules.get("sender", ())],
        "underride": [
            *[_user_rule("underride", r) for r in user_rules.get("underride", ())],
            *default_underride_rules(),
        ],
    }
    for kind, rules in ordered.items():
        for rule in rules:
            change = settings.get(rule["rule_id"])
            if change is not None:
                if change.enabled is not None:
                    rule["enabled"] = change.enabled
                if change.actions is not None:
                    rule["actions"] = list(change.actions)
            ruleset[kind].append(rule)
    return ruleset


def _user_rule(kind: str, stored: JsonDict) -> JsonDict:
    rule: JsonDict = {
        "rule_id": stored["rule_id"],
        "default": False,
        "enabled": True,
        "actions": list(stored["actions"]),
    }
    if kind in CONDITION_KINDS:
        rule["conditions"] = list(stored.get("conditions") or [])
    elif kind == "content":
        rule["pattern"] = stored.get("pattern", "")
    return rule


# -- validation of rules clients send ---------------------------------------------------


class InvalidRule(ValueError):
    pass


def clean_actions(actions: Any) -> list[Any]:
    """Check a client's `actions`. The historical ones (spec: "Historical Actions") are
    accepted and kept as sent, so a client reads back what it wrote (as Synapse does);
    evaluation ignores them, so `["dont_notify"]` means the same as `[]`."""
    if not isinstance(actions, list):
        raise InvalidRule("'actions' must be a list")
    for action in actions:
        if isinstance(action, str):
            if action != "notify" and action not in HISTORICAL_ACTIONS:
                raise InvalidRule(f"Unrecognised action {action!r}")
        elif not (isinstance(action, dict) and isinstance(action.get("set_tweak"), str)):
            raise InvalidRule(f"Unrecognised action {action!r}")
    return list(actions)


def check_rule_body(kind: str, rule_id: str, body: JsonDict) -> JsonDict:
    """The stored form of a rule a client PUTs: {"rule_id", "actions", ...} for its kind."""
    rule: JsonDict = {"rule_id": rule_id, "actions": clean_actions(body.get("actions"))}
    if kind in CONDITION_KINDS:
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
            raise InvalidRule("'conditions' must be a list of objects")
        for condition in conditions:
            if not isinstance(condition.get("kind"), str):
                raise InvalidRule("every condition needs a 'kind'")
        rule["conditions"] = conditions
    elif kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise InvalidRule("content rules need a 'pattern' string")
        rule["pattern"] = pattern
    return rule


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PushContext:
    """What evaluating one event for one user needs to know beyond the event."""

    user_id: str
    display_name: str | None
    member_count: int
    sender_power_level: int
    # the `notifications` object of m.room.power_levels (e.g. {"room": 50})
    notification_levels: Mapping[str, Any]


def split_dotted_key(key: str) -> list[str]:
    """spec appendix "Dot-separated property paths": `\\.` is a literal dot, `\\\\` a literal
    backslash, any other backslash is itself."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


_MISSING = object()


def lookup(event: Mapping[str, Any], key: str) -> Any:
    value: Any = event
    for part in split_dotted_key(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=1000)
def _glob_regex(pattern: str, word_boundary: bool) -> re.Pattern[str]:
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if word_boundary:
        # spec: a word boundary is the start/end of the value or any character outside
        # [A-Za-z0-9_]
        return re.compile(
            rf"(?:^|[^A-Za-z0-9_])({body})(?:[^A-Za-z0-9_]|$)", re.IGNORECASE | re.DOTALL
        )
    return re.compile(rf"\A{body}\Z", re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, word_boundary: bool = False) -> bool:
    regex = _glob_regex(pattern, word_boundary)
    return (regex.search if word_boundary else regex.match)(value) is not None


def _is_simple_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool):
        return True
    return isinstance(value, int) and -MAX_SAFE_INT <= value <= MAX_SAFE_INT


def _same_value(a: Any, b: Any) -> bool:
    # True == 1 in Python; JSON never equates a boolean with a number
    return type(a) is type(b) and a == b


_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")


def _member_count_matches(spec: Any, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    found = _MEMBER_COUNT.match(spec)
    if found is None:
        return False
    op, number = found.group(1) or "==", int(found.group(2))
    return {
        "==": count == number,
        "<": count < number,
        ">": count > number,
        "<=": count <= number,
        ">=": count >= number,
    }[op]


def condition_matches(
    condition: Mapping[str, Any], event: Mapping[str, Any], ctx: PushContext
) -> bool:
    """Unrecognised or malformed conditions never match (spec: "Conditions")."""
    kind = condition.get("kind")
    if kind == "event_match":
        key, pattern = condition.get("key"), condition.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = lookup(event, key)
        if not isinstance(value, str):
            return False
        return glob_matches(pattern, value, word_boundary=key == "content.body")
    if kind == "event_property_is":
        key, wanted = condition.get("key"), condition.get("value", _MISSING)
        if not isinstance(key, str) or not _is_simple_value(wanted):
            return False
        value = lookup(event, key)
        return value is not _MISSING and _is_simple_value(value) and _same_value(value, wanted)
    if kind == "event_property_contains":
        key, wanted = condition.get("key"), condition.get("value", _MISSING)
        if not isinstance(key, str) or not _is_simple_value(wanted):
            return False
        value = lookup(event, key)
        if not isinstance(value, list):
            return False
        return any(_is_simple_value(item) and _same_value(item, wanted) for item in value)
    if kind == "contains_display_name":
        body = lookup(event, "content.body")
        name = ctx.display_name
        if not isinstance(body, str) or not name:
            return False
        # the name matches as whole words, literally (it is not a glob)
        escaped = re.escape(name)
        return (
            re.search(rf"(?:^|[^A-Za-z0-9_]){escaped}(?:[^A-Za-z0-9_]|$)", body, re.IGNORECASE)
            is not None
        )
    if kind == "room_member_count":
        return _member_count_matches(condition.get("is"), ctx.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        if not isinstance(key, str):
            return False
        # spec: m.room.power_levels `notifications` - `room` defaults to 50
        required = ctx.notification_levels.get(key, 50 if key == "room" else _MISSING)
        if isinstance(required, bool) or not isinstance(required, int):
            return False
        return ctx.sender_power_level >= required
    return False


def rule_matches(
    kind: str, rule: Mapping[str, Any], event: Mapping[str, Any], ctx: PushContext
) -> bool:
    if kind == "room":
        return bool(event.get("room_id") == rule["rule_id"])
    if kind == "sender":
        return bool(event.get("sender") == rule["rule_id"])
    if kind == "content":
        body = lookup(event, "content.body")
        pattern = rule.get("pattern")
        return (
            isinstance(body, str)
            and isinstance(pattern, str)
            and glob_matches(pattern, body, word_boundary=True)
        )
    return all(condition_matches(c, event, ctx) for c in rule.get("conditions") or [])


def evaluate(
    ruleset: Mapping[str, Sequence[Mapping[str, Any]]], event: Mapping[str, Any], ctx: PushContext
) -> list[Any]:
    """The actions of the first enabled rule that matches `event`, in kind order; [] when
    none does (and then nothing is notified)."""
    for kind in KINDS:
        for rule in ruleset.get(kind, ()):
            if rule.get("enabled", True) and rule_matches(kind, rule, event, ctx):
                return [
                    a
                    for a in rule.get("actions", [])
                    if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)
                ]
    return []


@dataclass(frozen=True)
class Outcome:
    notify: bool
    highlight: bool


def outcome(actions: Sequence[Any]) -> Outcome:
    """spec: "notify" makes a notification; a highlight tweak without a value means true."""
    highlight = False
    for action in actions:
        if isinstance(action, Mapping) and action.get("set_tweak") == "highlight":
            highlight = action.get("value", True) is True
    return Outcome(notify="notify" in actions, highlight=highlight)


def tweaks(actions: Sequence[Any]) -> JsonDict:
    """The `tweaks` a push gateway receives for these actions."""
    found: JsonDict = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            found[action["set_tweak"]] = action.get("value", True)
    return found
