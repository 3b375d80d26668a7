"""push_rules, push_rule_settings and push_rules_stream: each user's own push rules, their
changes (enabled, actions) to any rule, and the position of their last change in the
"push_rules" stream, which /sync reads to send `m.push_rules` again.

Every change takes the next push_rules position in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata
from ranvier.storage.stream_ids import PUSH_RULES_STREAM, current_position, next_position

push_rules = Table(
    "push_rules",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("rule_id", Text, primary_key=True),
    Column("priority", BigInteger, nullable=False),
    Column("conditions", Text, nullable=True),
    Column("pattern", Text, nullable=True),
    Column("actions", Text, nullable=False),
)

push_rule_settings = Table(
    "push_rule_settings",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("rule_id", Text, primary_key=True),
    Column("enabled", Boolean, nullable=True),
    Column("actions", Text, nullable=True),
)

push_rules_stream = Table(
    "push_rules_stream",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("stream_id", BigInteger, nullable=False),
)

JsonDict = dict[str, Any]


class RelativeRuleNotFound(Exception):
    """The before/after rule of a new rule does not exist among the user's rules."""


@dataclass(frozen=True)
class StoredRules:
    # kind -> the user's rules, most important first: {"rule_id", "actions", ...}
    rules: dict[str, list[JsonDict]]
    # rule_id -> (enabled or None, actions or None)
    settings: dict[str, tuple[bool | None, list[Any] | None]]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _bump(conn: AsyncConnection, user_id: str) -> int:
    position = await next_position(conn, PUSH_RULES_STREAM)
    await conn.execute(
        insert_for(conn)(push_rules_stream)
        .values(user_id=user_id, stream_id=position)
        .on_conflict_do_update(index_elements=["user_id"], set_={"stream_id": position})
    )
    return position


class PushRuleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_rules(self, user_id: str) -> StoredRules:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(push_rules)
                .where(push_rules.c.user_id == user_id)
                .order_by(push_rules.c.kind, push_rules.c.priority.desc())
            )
            rules: dict[str, list[JsonDict]] = {}
            for row in rows:
                rule: JsonDict = {"rule_id": row.rule_id, "actions": orjson.loads(row.actions)}
                if row.conditions is not None:
                    rule["conditions"] = orjson.loads(row.conditions)
                if row.pattern is not None:
                    rule["pattern"] = row.pattern
                rules.setdefault(row.kind, []).append(rule)
            settings: dict[str, tuple[bool | None, list[Any] | None]] = {}
            for row in await conn.execute(
                select(push_rule_settings).where(push_rule_settings.c.user_id == user_id)
            ):
                actions = None if row.actions is None else orjson.loads(row.actions)
                settings[row.rule_id] = (row.enabled, actions)
        return StoredRules(rules, settings)

    async def has_rule(self, user_id: str, kind: str, rule_id: str) -> bool:
        async with self._db.read() as conn:
            return await _exists(conn, user_id, kind, rule_id)

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule: JsonDict,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> int:
        """Create or replace a user rule; `before`/`after` place it next to another of the
        user's rules of the kind, else a new rule becomes the most important and a replaced
        one keeps its place. Returns the push_rules position; raises RelativeRuleNotFound."""
        rule_id = rule["rule_id"]
        async with self._db.transaction() as conn:
            position = await _bump(conn, user_id)
            mine = (push_rules.c.user_id == user_id) & (push_rules.c.kind == kind)
            existing = (
                await conn.execute(
                    select(push_rules.c.priority).where(mine, push_rules.c.rule_id == rule_id)
                )
            ).scalar_one_or_none()
            relative = before if before is not None else after
            if relative is not None:
                anchor = (
                    await conn.execute(
                        select(push_rules.c.priority).where(mine, push_rules.c.rule_id == relative)
                    )
                ).scalar_one_or_none()
                if anchor is None or relative == rule_id:
                    raise RelativeRuleNotFound(relative)
                await conn.execute(delete(push_rules).where(mine, push_rules.c.rule_id == rule_id))
                # make room: shift every rule at or above the new slot up by one
                slot = anchor + 1 if before is not None else anchor
                await conn.execute(
                    update(push_rules)
                    .where(mine, push_rules.c.priority >= slot)
                    .values(priority=push_rules.c.priority + 1)
                )
                priority = int(slot)
            elif existing is not None:
                priority = int(existing)
                await conn.execute(delete(push_rules).where(mine, push_rules.c.rule_id == rule_id))
            else:
                top = (
                    await conn.execute(select(func.max(push_rules.c.priority)).where(mine))
                ).scalar_one_or_none()
                priority = 0 if top is None else int(top) + 1
            conditions = rule.get("conditions")
            await conn.execute(
                push_rules.insert().values(
                    user_id=user_id,
                    kind=kind,
                    rule_id=rule_id,
                    priority=priority,
                    conditions=None if conditions is None else _dumps(conditions),
                    pattern=rule.get("pattern"),
                    actions=_dumps(rule["actions"]),
                )
            )
            # spec: a rule (re)created through this API is enabled
            await conn.execute(
                delete(push_rule_settings).where(
                    push_rule_settings.c.user_id == user_id,
                    push_rule_settings.c.rule_id == rule_id,
                )
            )
        return position

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> int | None:
        """Returns the push_rules position, or None when the user has no such rule."""
        async with self._db.transaction() as conn:
            if not await _exists(conn, user_id, kind, rule_id):
                return None
            position = await _bump(conn, user_id)
            await conn.execute(
                delete(push_rules).where(
                    push_rules.c.user_id == user_id,
                    push_rules.c.kind == kind,
                    push_rules.c.rule_id == rule_id,
                )
            )
            await conn.execute(
                delete(push_rule_settings).where(
                    push_rule_settings.c.user_id == user_id,
                    push_rule_settings.c.rule_id == rule_id,
                )
            )
        return position

    async def set_setting(
        self,
        user_id: str,
        rule_id: str,
        *,
        enabled: bool | None = None,
        actions: list[Any] | None = None,
    ) -> int:
        """Change whether a rule is enabled or its actions (only what is not None)."""
        values: JsonDict = {}
        if enabled is not None:
            values["enabled"] = enabled
        if actions is not None:
            values["actions"] = _dumps(actions)
        async with self._db.transaction() as conn:
            position = await _bump(conn, user_id)
            await conn.execute(
                insert_for(conn)(push_rule_settings)
                .values(user_id=user_id, rule_id=rule_id, **values)
                .on_conflict_do_update(index_elements=["user_id", "rule_id"], set_=values)
            )
        return position

    async def changed_users(self, user_id: str, after: int, up_to: int) -> bool:
        """Whether the user's rules changed at a position in (after, up_to]."""
        async with self._db.read() as conn:
            position = (
                await conn.execute(
                    select(push_rules_stream.c.stream_id).where(
                        push_rules_stream.c.user_id == user_id
                    )
                )
            ).scalar_one_or_none()
        return position is not None and after < position <= up_to

    async def current_stream_position(self) -> int:
        async with self._db.read() as conn:
            return await current_position(conn, PUSH_RULES_STREAM)


async def _exists(conn: AsyncConnection, user_id: str, kind: str, rule_id: str) -> bool:
    found = (
        await conn.execute(
            select(push_rules.c.rule_id).where(
                push_rules.c.user_id == user_id,
                push_rules.c.kind == kind,
                push_rules.c.rule_id == rule_id,
            )
        )
    ).first()
    return found is not None
