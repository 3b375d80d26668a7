"""What each local member of an upgraded room keeps in the replacement room: the room in
their m.direct lists, their tags on it and their push rules for it.

The spec leaves this to servers; Synapse copies all three at upgrade time for every local
user joined to the old room, and clients (and SyTest's "/upgrade preserves direct room
state", "local user has push rules copied to upgraded room") rely on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ranvier.errors import MatrixError
from ranvier.services.account_data import AccountDataService
from ranvier.services.push.rules import PushRuleService

logger = logging.getLogger(__name__)

DIRECT = "m.direct"
# push rule kinds whose rules name a room in their conditions (spec: push rules "kinds")
_CONDITION_KINDS = ("override", "underride")


class UpgradeUserStateTransfer:
    def __init__(self, account_data: AccountDataService, push_rules: PushRuleService) -> None:
        self._account_data = account_data
        self._push_rules = push_rules

    async def on_upgraded(self, old_room_id: str, new_room_id: str, users: Iterable[str]) -> None:
        """RoomUpgradeService listener; one user's failure does not stop the others."""
        for user_id in users:
            try:
                await self._copy_direct(user_id, old_room_id, new_room_id)
                await self._copy_tags(user_id, old_room_id, new_room_id)
                await self._copy_push_rules(user_id, old_room_id, new_room_id)
            except (MatrixError, ValueError) as exc:
                logger.warning(
                    "Could not copy %s's room state from %s to %s: %s",
                    user_id,
                    old_room_id,
                    new_room_id,
                    exc,
                )

    async def _copy_direct(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        try:
            direct = await self._account_data.get_global(user_id, user_id, DIRECT)
        except MatrixError:
            return  # no m.direct at all
        changed = False
        updated: dict[str, Any] = {}
        for other_user, rooms in direct.items():
            if isinstance(rooms, list) and old_room_id in rooms and new_room_id not in rooms:
                updated[other_user] = [*rooms, new_room_id]
                changed = True
            else:
                updated[other_user] = rooms
        if changed:
            await self._account_data.set_global(user_id, user_id, DIRECT, updated)

    async def _copy_tags(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        tags = await self._account_data.get_tags(user_id, user_id, old_room_id)
        for tag, content in tags.items():
            await self._account_data.add_tag(user_id, user_id, new_room_id, tag, content)

    async def _copy_push_rules(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        ruleset = await self._push_rules.ruleset(user_id)
        copies: list[tuple[str, dict[str, Any]]] = []
        for rule in ruleset.get("room", []):
            if not rule.get("default") and rule["rule_id"] == old_room_id:
                copies.append(("room", {**rule, "rule_id": new_room_id}))
        for kind in _CONDITION_KINDS:
            for rule in ruleset.get(kind, []):
                conditions = rule.get("conditions") or []
                names_room = any(
                    condition.get("key") == "room_id" and condition.get("pattern") == old_room_id
                    for condition in conditions
                )
                if rule.get("default") or not names_room:
                    continue
                moved = [
                    {**condition, "pattern": new_room_id}
                    if condition.get("key") == "room_id" and condition.get("pattern") == old_room_id
                    else condition
                    for condition in conditions
                ]
                rule_id = rule["rule_id"].replace(old_room_id, new_room_id)
                if rule_id == rule["rule_id"]:
                    # an ID that does not name the room would overwrite the original
                    continue
                copies.append((kind, {**rule, "rule_id": rule_id, "conditions": moved}))
        for kind, rule in copies:
            await self._push_rules.put_rule(
                user_id,
                kind,
                rule["rule_id"],
                actions=list(rule.get("actions", [])),
                conditions=rule.get("conditions") if kind in _CONDITION_KINDS else None,
                pattern=rule.get("pattern"),
                before=None,
                after=None,
            )
            if rule.get("enabled") is False:
                await self._push_rules.set_enabled(user_id, kind, rule["rule_id"], False)
