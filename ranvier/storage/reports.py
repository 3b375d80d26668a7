"""event_reports, room_reports and user_reports: content and users reported to the server
admins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.metadata import metadata

event_reports = Table(
    "event_reports",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("received_ts", BigInteger, nullable=False),
    Column("room_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("content", Text, nullable=False),
    Index("ix_event_reports_room", "room_id"),
    Index("ix_event_reports_user", "user_id"),
)

room_reports = Table(
    "room_reports",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("received_ts", BigInteger, nullable=False),
    Column("room_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

user_reports = Table(
    "user_reports",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("received_ts", BigInteger, nullable=False),
    # the user reported, and who reported them
    Column("target_user_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_user_reports_target_user", "target_user_id"),
)


@dataclass(frozen=True)
class EventReport:
    id: int
    received_ts: int
    room_id: str
    event_id: str
    user_id: str
    reason: str | None
    content: dict[str, Any]
    # the reported event's sender, when the event is still stored
    sender: str | None


class ReportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_event_report(
        self,
        *,
        room_id: str,
        event_id: str,
        user_id: str,
        reason: str | None,
        content: dict[str, Any],
        received_ts: int,
    ) -> int:
        return await self._insert(
            event_reports,
            received_ts=received_ts,
            room_id=room_id,
            event_id=event_id,
            user_id=user_id,
            reason=reason,
            content=orjson.dumps(content).decode(),
        )

    async def add_room_report(
        self, *, room_id: str, user_id: str, reason: str, received_ts: int
    ) -> int:
        return await self._insert(
            room_reports, received_ts=received_ts, room_id=room_id, user_id=user_id, reason=reason
        )

    async def add_user_report(
        self, *, target_user_id: str, user_id: str, reason: str, received_ts: int
    ) -> int:
        return await self._insert(
            user_reports,
            received_ts=received_ts,
            target_user_id=target_user_id,
            user_id=user_id,
            reason=reason,
        )

    async def _insert(self, table: Table, **values: Any) -> int:
        """Insert one report; its new ID."""
        async with self._db.transaction() as conn:
            result = await conn.execute(insert(table).values(**values))
            # no RETURNING: SQLite before 3.35 lacks it, and lastrowid does the job
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def _select(self) -> Any:
        return select(event_reports, events.c.sender.label("event_sender")).select_from(
            event_reports.outerjoin(events, events.c.event_id == event_reports.c.event_id)
        )

    async def list_event_reports(
        self,
        *,
        offset: int,
        limit: int,
        direction: Literal["b", "f"],
        room_id: str | None,
        user_id: str | None,
        event_sender_user_id: str | None,
    ) -> tuple[list[EventReport], int]:
        """A page of reports, newest first for "b", and how many match in all."""
        conditions = []
        if room_id is not None:
            conditions.append(event_reports.c.room_id.contains(room_id, autoescape=True))
        if user_id is not None:
            conditions.append(event_reports.c.user_id.contains(user_id, autoescape=True))
        if event_sender_user_id is not None:
            conditions.append(events.c.sender == event_sender_user_id)
        order = (
            (event_reports.c.received_ts.desc(), event_reports.c.id.desc())
            if direction == "b"
            else (event_reports.c.received_ts, event_reports.c.id)
        )
        query = self._select().where(*conditions).order_by(*order).offset(offset).limit(limit)
        count = (
            select(func.count())
            .select_from(
                event_reports.outerjoin(events, events.c.event_id == event_reports.c.event_id)
            )
            .where(*conditions)
        )
        async with self._db.read() as conn:
            rows = list(await conn.execute(query))
            total = int((await conn.execute(count)).scalar_one())
        return [_report(row) for row in rows], total

    async def get_event_report(self, report_id: int) -> EventReport | None:
        query = self._select().where(event_reports.c.id == report_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _report(row)

    async def delete_event_report(self, report_id: int) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(event_reports).where(event_reports.c.id == report_id)
            )
            return bool(result.rowcount)


def _report(row: Any) -> EventReport:
    return EventReport(
        id=row.id,
        received_ts=row.received_ts,
        room_id=row.room_id,
        event_id=row.event_id,
        user_id=row.user_id,
        reason=row.reason,
        content=orjson.loads(row.content),
        sender=row.event_sender,
    )
