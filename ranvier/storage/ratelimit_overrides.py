"""Per-user overrides of the message rate limit (Synapse's `ratelimit_override` table)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text, delete, select

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

ratelimit_override = Table(
    "ratelimit_override",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("messages_per_second", BigInteger, nullable=False),
    Column("burst_count", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class MessageLimit:
    # 0 means no limit at all
    messages_per_second: int
    burst_count: int


class RatelimitOverrideStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_all(self) -> dict[str, MessageLimit]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(ratelimit_override))
            return {
                row.user_id: MessageLimit(row.messages_per_second, row.burst_count) for row in rows
            }

    async def set(self, user_id: str, limit: MessageLimit) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(ratelimit_override).where(ratelimit_override.c.user_id == user_id)
            )
            await conn.execute(
                ratelimit_override.insert().values(
                    user_id=user_id,
                    messages_per_second=limit.messages_per_second,
                    burst_count=limit.burst_count,
                )
            )

    async def delete(self, user_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(ratelimit_override).where(ratelimit_override.c.user_id == user_id)
            )
