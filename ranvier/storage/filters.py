"""user_filters: the filters users upload for /sync and /messages, by ID.

Clients upload the same filter every time they start, so an identical upload gets the ID of
the filter already stored instead of a new row.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text, insert, select

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata
from ranvier.storage.stream_ids import FILTER_IDS, next_position

user_filters = Table(
    "user_filters",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("filter_id", BigInteger, primary_key=True),
    Column("filter_json", Text, nullable=False),
)


def _canonical(filter_json: dict[str, Any]) -> str:
    return orjson.dumps(filter_json, option=orjson.OPT_SORT_KEYS).decode()


class FilterStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_filter(self, user_id: str, filter_json: dict[str, Any]) -> int:
        """Store the filter for `user_id`; returns its ID (an existing one if identical)."""
        text = _canonical(filter_json)
        async with self._db.transaction() as conn:
            existing = (
                await conn.execute(
                    select(user_filters.c.filter_id)
                    .where(user_filters.c.user_id == user_id, user_filters.c.filter_json == text)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if existing is not None:
                return int(existing)
            # IDs come from a counter shared by all users: unique without a per-user race
            filter_id = await next_position(conn, FILTER_IDS)
            await conn.execute(
                insert(user_filters).values(user_id=user_id, filter_id=filter_id, filter_json=text)
            )
        return filter_id

    async def get_filter(self, user_id: str, filter_id: int) -> dict[str, Any] | None:
        async with self._db.read() as conn:
            text = (
                await conn.execute(
                    select(user_filters.c.filter_json).where(
                        user_filters.c.user_id == user_id, user_filters.c.filter_id == filter_id
                    )
                )
            ).scalar_one_or_none()
        if text is None:
            return None
        value: dict[str, Any] = orjson.loads(text)
        return value
