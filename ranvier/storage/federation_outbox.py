"""The outbound EDUs that must survive a restart or an outage of their destination
(to-device messages, device list updates): each is a row until the destination has
acknowledged the transaction that carried it, sent oldest first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text, and_, delete, insert, select

from ranvier.clock import now_ms
from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

federation_outbox = Table(
    "federation_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("destination", Text, nullable=False),
    Column("edu_type", Text, nullable=False),
    Column("content_json", Text, nullable=False),
    Column("coalesce_key", Text, nullable=True),
    Column("coalesce_order", BigInteger, nullable=True),
    Column("queued_ts", BigInteger, nullable=False),
    Index("ix_federation_outbox_destination", "destination", "id"),
    Index("ix_federation_outbox_key", "destination", "coalesce_key"),
)


@dataclass(frozen=True, slots=True)
class OutboxEdu:
    outbox_id: int
    edu_type: str
    content: dict[str, Any]


class FederationOutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        destinations: Collection[str],
        edus: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        coalesce: tuple[str, int] | None = None,
    ) -> None:
        """Queue `edus`, in order, for each destination. With `coalesce` (a key and an
        order), they replace the EDUs queued under the key that are still pending and
        older; a destination already holding newer ones under it gets none."""
        if not destinations or not edus:
            return
        coalesce_key, coalesce_order = coalesce if coalesce is not None else (None, None)
        now = now_ms()
        encoded = [(edu_type, orjson.dumps(content).decode()) for edu_type, content in edus]
        rows = [
            {
                "destination": destination,
                "edu_type": edu_type,
                "content_json": content_json,
                "coalesce_key": coalesce_key,
                "coalesce_order": coalesce_order,
                "queued_ts": now,
            }
            for destination in destinations
            for edu_type, content_json in encoded
        ]
        async with self._db.transaction() as conn:
            if coalesce_key is not None:
                same_key = and_(
                    federation_outbox.c.destination.in_(list(destinations)),
                    federation_outbox.c.coalesce_key == coalesce_key,
                )
                newer = await conn.execute(
                    select(federation_outbox.c.destination)
                    .where(same_key, federation_outbox.c.coalesce_order > coalesce_order)
                    .distinct()
                )
                skipped = {row.destination for row in newer}
                rows = [row for row in rows if row["destination"] not in skipped]
                await conn.execute(
                    delete(federation_outbox).where(
                        same_key, federation_outbox.c.coalesce_order < coalesce_order
                    )
                )
            if rows:
                await conn.execute(insert(federation_outbox), rows)

    async def pending(self, destination: str, limit: int) -> list[OutboxEdu]:
        """The oldest `limit` EDUs queued for `destination`."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    federation_outbox.c.id,
                    federation_outbox.c.edu_type,
                    federation_outbox.c.content_json,
                )
                .where(federation_outbox.c.destination == destination)
                .order_by(federation_outbox.c.id)
                .limit(limit)
            )
            return [OutboxEdu(row.id, row.edu_type, orjson.loads(row.content_json)) for row in rows]

    async def remove(self, outbox_ids: Iterable[int]) -> None:
        """Forget EDUs their destination has acknowledged."""
        ids = list(outbox_ids)
        if not ids:
            return
        async with self._db.transaction() as conn:
            await conn.execute(delete(federation_outbox).where(federation_outbox.c.id.in_(ids)))

    async def destinations_with_pending(self) -> set[str]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(federation_outbox.c.destination).distinct())
            return {row.destination for row in rows}
