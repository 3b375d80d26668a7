"""Push rules per user (spec: client-server-api "Push Rules: API") and the "push_rules" sync
source that serves them as `m.push_rules` global account data."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from cachetools import LRUCache

from ranvier.errors import MatrixError
from ranvier.protocol.push_rules import (
    KINDS,
    InvalidRule,
    RuleSettings,
    build_ruleset,
    check_rule_body,
    clean_actions,
    default_rule_ids,
)
from ranvier.services.stream_notify import Notify
from ranvier.storage.push_rules import PushRuleStore, RelativeRuleNotFound
from ranvier.storage.stream_ids import PUSH_RULES_STREAM

JsonDict = dict[str, Any]
# rule_id -> kind of the spec's server-default rules
DEFAULT_RULE_KINDS = default_rule_ids()


def not_found() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "Push rule not found")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MatrixError(400, "M_INVALID_PARAM", f"Unknown push rule kind {kind!r}")


def check_scope(scope: str) -> None:
    # spec: "global" is the only ruleset
    if scope != "global":
        raise MatrixError(400, "M_INVALID_PARAM", f"Unknown push rule scope {scope!r}")


class PushRuleService:
    stream_name = PUSH_RULES_STREAM

    def __init__(
        self, store: PushRuleStore, notify: Notify, position: int, cache_size: int = 10_000
    ) -> None:
        self._store = store
        self._notify = notify
        self._position = position
        self._user_id_to_ruleset: LRUCache[str, JsonDict] = LRUCache(maxsize=cache_size)

    @classmethod
    async def create(cls, store: PushRuleStore, notify: Notify) -> PushRuleService:
        return cls(store, notify, await store.current_stream_position())

    # -- reading -------------------------------------------------------------------------

    async def ruleset(self, user_id: str) -> JsonDict:
        """The user's global ruleset; callers must not change it (it is cached)."""
        cached = self._user_id_to_ruleset.get(user_id)
        if cached is not None:
            return cached
        stored = await self._store.get_rules(user_id)
        settings = {
            rule_id: RuleSettings(enabled=enabled, actions=actions)
            for rule_id, (enabled, actions) in stored.settings.items()
        }
        ruleset = build_ruleset(user_id, stored.rules, settings)
        self._user_id_to_ruleset[user_id] = ruleset
        return ruleset

    async def get_all(self, user_id: str) -> JsonDict:
        return {"global": await self.ruleset(user_id)}

    async def get_kind(self, user_id: str, kind: str) -> list[JsonDict]:
        check_kind(kind)
        rules: list[JsonDict] = (await self.ruleset(user_id))[kind]
        return rules

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> JsonDict:
        for rule in await self.get_kind(user_id, kind):
            if rule["rule_id"] == rule_id:
                return rule
        raise not_found()

    # -- changing ------------------------------------------------------------------------

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        *,
        actions: list[Any],
        conditions: list[JsonDict] | None,
        pattern: str | None,
        before: str | None,
        after: str | None,
    ) -> None:
        check_kind(kind)
        # spec: IDs starting with "." are the server's; slashes cannot round-trip in a path
        if rule_id.startswith("."):
            raise MatrixError(
                400, "M_INVALID_PARAM", "Rule IDs starting with '.' are reserved for the server"
            )
        if not rule_id or "/" in rule_id or "\\" in rule_id:
            raise MatrixError(400, "M_INVALID_PARAM", "Rule IDs cannot contain '/' or '\\'")
        for relative in (before, after):
            if relative is not None and relative.startswith("."):
                raise MatrixError(
                    400, "M_UNKNOWN", "Rules cannot be placed relative to server-default rules"
                )
        if before is not None and after is not None:
            raise MatrixError(400, "M_INVALID_PARAM", "Give 'before' or 'after', not both")
        try:
            # the rule's format is protocol; the body's JSON types were checked at the edge
            rule = check_rule_body(kind, rule_id, _rule_body(actions, conditions, pattern))
        except InvalidRule as exc:
            raise MatrixError(400, "M_BAD_JSON", f"Invalid push rule: {exc}") from exc
        # a room rule's ID is the room it matches and a sender rule's the user, but any other
        # ID is accepted (as Synapse, and SyTest adds room rules named "#a:example.com"):
        # such a rule simply matches nothing
        try:
            position = await self._store.put_rule(user_id, kind, rule, before=before, after=after)
        except RelativeRuleNotFound as exc:
            raise MatrixError(
                400, "M_UNKNOWN", f"before/after rule not found: {exc.args[0]}"
            ) from exc
        self._changed(user_id, position)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        check_kind(kind)
        position = await self._store.delete_rule(user_id, kind, rule_id)
        if position is None:
            raise not_found()
        self._changed(user_id, position)

    async def get_enabled(self, user_id: str, kind: str, rule_id: str) -> bool:
        return bool((await self.get_rule(user_id, kind, rule_id))["enabled"])

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self.get_rule(user_id, kind, rule_id)
        self._changed(user_id, await self._store.set_setting(user_id, rule_id, enabled=enabled))

    async def get_actions(self, user_id: str, kind: str, rule_id: str) -> list[Any]:
        actions: list[Any] = (await self.get_rule(user_id, kind, rule_id))["actions"]
        return actions

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: list[Any]) -> None:
        try:
            cleaned = clean_actions(actions)
        except InvalidRule as exc:
            raise MatrixError(400, "M_BAD_JSON", f"Invalid actions: {exc}") from exc
        await self.get_rule(user_id, kind, rule_id)
        self._changed(user_id, await self._store.set_setting(user_id, rule_id, actions=cleaned))

    def _changed(self, user_id: str, position: int) -> None:
        self._user_id_to_ruleset.pop(user_id, None)
        self._position = max(self._position, position)
        self._notify(PUSH_RULES_STREAM, position, users=(user_id,))

    # -- the sync source -----------------------------------------------------------------

    def current_position(self) -> int:
        return self._position

    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
    ) -> JsonDict | None:
        # an initial sync always carries the rules, defaults included
        if from_pos == 0 or await self._store.changed_users(user_id, from_pos, to_pos):
            return {"global": await self.ruleset(user_id)}
        return None


def _rule_body(
    actions: list[Any], conditions: list[JsonDict] | None, pattern: str | None
) -> JsonDict:
    body: JsonDict = {"actions": actions}
    if conditions is not None:
        body["conditions"] = conditions
    if pattern is not None:
        body["pattern"] = pattern
    return body
