"""Account data in /sync: the user's global account data (with the push rules, when the
push rules source is registered) and per-room account data, changed since the token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.protocol.filters import Filter
from ranvier.services.account_data import AccountDataService
from ranvier.services.sync.sources import PushRulesSource

JsonDict = dict[str, Any]
PUSH_RULES = "m.push_rules"


@dataclass
class AccountDataUpdates:
    global_events: list[JsonDict]
    room_events: dict[str, list[JsonDict]]
    position: int
    push_rules_position: int


class AccountDataReader:
    def __init__(
        self, account_data: AccountDataService, push_rules: PushRulesSource | None = None
    ) -> None:
        self._account_data = account_data
        # without it the token's push_rules position stays where the client's was
        self.push_rules = push_rules

    async def updates(
        self,
        user_id: str,
        device_id: str | None,
        since: int | None,
        push_rules_since: int,
        sync_filter: Filter,
    ) -> AccountDataUpdates:
        """`since` None: a full sync, everything."""
        full = since is None
        changes = await self._account_data.changes_since(user_id, since)
        since = since or 0
        global_events = [
            {"type": data_type, "content": content}
            for data_type, content in changes.global_data.items()
            if sync_filter.account_data.allows_type(data_type)
        ]
        push_rules_position = push_rules_since
        if self.push_rules is not None:
            push_rules_position = self.push_rules.current_position()
            if full or push_rules_position > push_rules_since:
                content = await self.push_rules.get_updates(
                    user_id, device_id, (), 0 if full else push_rules_since, push_rules_position
                )
                if content is not None and sync_filter.account_data.allows_type(PUSH_RULES):
                    global_events = [e for e in global_events if e["type"] != PUSH_RULES]
                    global_events.append({"type": PUSH_RULES, "content": content})
        room_filter = sync_filter.room.account_data
        room_events: dict[str, list[JsonDict]] = {}
        for room_id, by_type in changes.room_data.items():
            if not room_filter.allows_room(room_id):
                continue
            events = [
                {"type": data_type, "content": content}
                for data_type, content in by_type.items()
                if room_filter.allows_type(data_type)
            ]
            if events:
                room_events[room_id] = events
        return AccountDataUpdates(global_events, room_events, changes.position, push_rules_position)
