"""email_pusher_throttle: per email pusher and room, when the last mail about the room was
sent and how long the next must wait (services/push/email_pusher.py keeps the rules).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    select,
)

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata

email_pusher_throttle = Table(
    "email_pusher_throttle",
    metadata,
    Column(
        "pusher_id",
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("pushers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("room_id", Text, nullable=False),
    Column("last_sent_ts", BigInteger, nullable=False),
    Column("throttle_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("pusher_id", "room_id"),
)


@dataclass(frozen=True)
class Throttle:
    last_sent_ts: int
    throttle_ms: int

    @property
    def may_send_at(self) -> int:
        return self.last_sent_ts + self.throttle_ms


class EmailThrottleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, pusher_id: int) -> dict[str, Throttle]:
        """room_id -> the pusher's throttle there."""
        query = select(email_pusher_throttle).where(email_pusher_throttle.c.pusher_id == pusher_id)
        async with self._db.read() as conn:
            return {
                row.room_id: Throttle(int(row.last_sent_ts), int(row.throttle_ms))
                for row in await conn.execute(query)
            }

    async def set(self, pusher_id: int, room_to_throttle: dict[str, Throttle]) -> None:
        if not room_to_throttle:
            return
        async with self._db.transaction() as conn:
            for room_id, throttle in room_to_throttle.items():
                values = {
                    "last_sent_ts": throttle.last_sent_ts,
                    "throttle_ms": throttle.throttle_ms,
                }
                await conn.execute(
                    insert_for(conn)(email_pusher_throttle)
                    .values(pusher_id=pusher_id, room_id=room_id, **values)
                    .on_conflict_do_update(index_elements=["pusher_id", "room_id"], set_=values)
                )
