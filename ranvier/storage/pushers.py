"""pushers: where each user's notifications are pushed (spec: client-server-api "Pushers").

A pusher is keyed by (app_id, pushkey, user_id); `last_stream_ordering` is how far its
delivery has got, so that a restart resumes instead of pushing everything again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    delete,
    select,
    update,
)

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

pushers = Table(
    "pushers",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("app_id", Text, nullable=False),
    Column("pushkey", Text, nullable=False),
    Column("app_display_name", Text, nullable=False),
    Column("device_display_name", Text, nullable=False),
    Column("profile_tag", Text, nullable=True),
    Column("lang", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("last_stream_ordering", BigInteger, nullable=False),
    Column("failing_since", BigInteger, nullable=True),
    # the device whose session created the pusher: logging it out removes the pusher
    Column("device_id", Text, nullable=True),
    UniqueConstraint("app_id", "pushkey", "user_id", name="uq_pushers_app_pushkey_user"),
    Index("ix_pushers_user", "user_id"),
    Index("ix_pushers_user_device", "user_id", "device_id"),
)


@dataclass(frozen=True)
class Pusher:
    id: int
    user_id: str
    kind: str
    app_id: str
    pushkey: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    created_ts: int
    last_stream_ordering: int
    device_id: str | None = None


def _pusher(row: Any) -> Pusher:
    return Pusher(
        id=int(row.id),
        user_id=row.user_id,
        kind=row.kind,
        app_id=row.app_id,
        pushkey=row.pushkey,
        app_display_name=row.app_display_name,
        device_display_name=row.device_display_name,
        profile_tag=row.profile_tag,
        lang=row.lang,
        data=orjson.loads(row.data),
        created_ts=int(row.created_ts),
        last_stream_ordering=int(row.last_stream_ordering),
        device_id=row.device_id,
    )


class PusherStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_for_user(self, user_id: str) -> list[Pusher]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(pushers).where(pushers.c.user_id == user_id).order_by(pushers.c.id)
            )
            return [_pusher(row) for row in rows]

    async def get_all(self) -> list[Pusher]:
        async with self._db.read() as conn:
            return [_pusher(row) for row in await conn.execute(select(pushers))]

    async def set_pusher(self, pusher: Pusher, *, append: bool) -> tuple[Pusher, list[Pusher]]:
        """Create or replace the user's pusher with this app_id and pushkey; unless `append`,
        first remove other users' pushers with the same app_id and pushkey (spec: "append").
        Returns the stored pusher and the pushers removed."""
        async with self._db.transaction() as conn:
            same_key = (pushers.c.app_id == pusher.app_id) & (pushers.c.pushkey == pusher.pushkey)
            removed: list[Pusher] = []
            if not append:
                rows = await conn.execute(
                    select(pushers).where(same_key, pushers.c.user_id != pusher.user_id)
                )
                removed = [_pusher(row) for row in rows]
                await conn.execute(
                    delete(pushers).where(same_key, pushers.c.user_id != pusher.user_id)
                )
            values = {
                "kind": pusher.kind,
                "app_display_name": pusher.app_display_name,
                "device_display_name": pusher.device_display_name,
                "profile_tag": pusher.profile_tag,
                "lang": pusher.lang,
                "data": orjson.dumps(pusher.data).decode(),
            }
            mine = same_key & (pushers.c.user_id == pusher.user_id)
            existing = (await conn.execute(select(pushers.c.id).where(mine))).scalar_one_or_none()
            if existing is not None:
                await conn.execute(update(pushers).where(mine).values(**values))
            else:
                await conn.execute(
                    pushers.insert().values(
                        user_id=pusher.user_id,
                        app_id=pusher.app_id,
                        pushkey=pusher.pushkey,
                        created_ts=pusher.created_ts,
                        last_stream_ordering=pusher.last_stream_ordering,
                        # an update keeps the creator's device (as Synapse): one device
                        # may change another's pusher without taking it over
                        device_id=pusher.device_id,
                        **values,
                    )
                )
            row = (await conn.execute(select(pushers).where(mine))).one()
        return _pusher(row), removed

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> Pusher | None:
        async with self._db.transaction() as conn:
            where = (
                (pushers.c.user_id == user_id)
                & (pushers.c.app_id == app_id)
                & (pushers.c.pushkey == pushkey)
            )
            row = (await conn.execute(select(pushers).where(where))).first()
            if row is None:
                return None
            await conn.execute(delete(pushers).where(where))
        return _pusher(row)

    async def delete_for_user(self, user_id: str) -> list[Pusher]:
        async with self._db.transaction() as conn:
            rows = await conn.execute(select(pushers).where(pushers.c.user_id == user_id))
            removed = [_pusher(row) for row in rows]
            await conn.execute(delete(pushers).where(pushers.c.user_id == user_id))
        return removed

    async def delete_for_devices(self, user_id: str, device_ids: list[str]) -> list[Pusher]:
        where = (pushers.c.user_id == user_id) & pushers.c.device_id.in_(device_ids)
        async with self._db.transaction() as conn:
            removed = [_pusher(row) for row in await conn.execute(select(pushers).where(where))]
            await conn.execute(delete(pushers).where(where))
        return removed

    async def set_progress(self, pusher_id: int, last_stream_ordering: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(pushers)
                .where(pushers.c.id == pusher_id)
                .values(last_stream_ordering=last_stream_ordering, failing_since=None)
            )

    async def set_failing(self, pusher_id: int, since_ms: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(pushers)
                .where(pushers.c.id == pusher_id, pushers.c.failing_since.is_(None))
                .values(failing_since=since_ms)
            )
