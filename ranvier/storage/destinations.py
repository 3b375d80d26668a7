"""Each remote server's delivery health: the backoff after failures, as the admin API shows it.

A row appears the first time a request to the server succeeds or fails. As in Synapse, a
server that answers has `retry_last_ts` and `retry_interval` 0 and no `failure_ts`; one
that failed has the time of the first failure in the run of failures, the time of the
last attempt and how long to wait after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    PrimaryKeyConstraint,
    Table,
    Text,
    and_,
    case,
    func,
    select,
    update,
)

from ranvier.storage.database import Database, insert_for
from ranvier.storage.events import events
from ranvier.storage.memberships import room_memberships
from ranvier.storage.metadata import metadata
from ranvier.storage.rooms import rooms
from ranvier.storage.state import current_state_events

destinations = Table(
    "destinations",
    metadata,
    Column("destination", Text, nullable=False),
    Column("retry_last_ts", BigInteger, nullable=True),
    Column("retry_interval", BigInteger, nullable=True),
    Column("failure_ts", BigInteger, nullable=True),
    Column("last_successful_stream_ordering", BigInteger, nullable=True),
    PrimaryKeyConstraint("destination"),
)

# the rooms a destination shares with us, and the newest event of each it should have
destination_rooms = Table(
    "destination_rooms",
    metadata,
    Column("destination", Text, nullable=False),
    Column("room_id", Text, nullable=False),
    Column("stream_ordering", BigInteger, nullable=False),
    PrimaryKeyConstraint("destination", "room_id"),
)

DestinationOrder = Literal[
    "destination",
    "retry_last_ts",
    "retry_interval",
    "failure_ts",
    "last_successful_stream_ordering",
]


@dataclass(frozen=True, slots=True)
class Destination:
    destination: str
    retry_last_ts: int
    retry_interval: int
    failure_ts: int | None
    last_successful_stream_ordering: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "retry_last_ts": self.retry_last_ts,
            "retry_interval": self.retry_interval,
            "failure_ts": self.failure_ts,
            "last_successful_stream_ordering": self.last_successful_stream_ordering,
        }

    @property
    def backing_off(self) -> bool:
        return self.retry_interval > 0


def _destination(row: Any) -> Destination:
    return Destination(
        destination=row.destination,
        retry_last_ts=row.retry_last_ts or 0,
        retry_interval=row.retry_interval or 0,
        failure_ts=row.failure_ts,
        last_successful_stream_ordering=row.last_successful_stream_ordering,
    )


@dataclass(frozen=True, slots=True)
class DestinationRoom:
    room_id: str
    stream_ordering: int


@dataclass(frozen=True, slots=True)
class CatchUpEvent:
    """The newest event a destination should have in one room, to send it on catch-up."""

    event_id: str
    room_id: str
    room_version: str
    pdu: dict[str, Any]
    stream_ordering: int


class DestinationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, destination: str) -> Destination | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(destinations).where(destinations.c.destination == destination)
                )
            ).first()
        return None if row is None else _destination(row)

    async def set_retry_timings(
        self, destination: str, failure_ts: int | None, retry_last_ts: int, retry_interval: int
    ) -> None:
        """Record a failure (or, with zeros and no failure_ts, a success)."""
        values = {
            "failure_ts": failure_ts,
            "retry_last_ts": retry_last_ts,
            "retry_interval": retry_interval,
        }
        async with self._db.transaction() as conn:
            await conn.execute(
                insert_for(conn)(destinations)
                .values(destination=destination, **values)
                .on_conflict_do_update(index_elements=["destination"], set_=values)
            )

    async def clear_retry_timings(self, destination: str) -> bool:
        """End `destination`'s backoff; False if it has no row."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(destinations)
                .where(destinations.c.destination == destination)
                .values(failure_ts=None, retry_last_ts=0, retry_interval=0)
            )
        return bool(result.rowcount)

    async def list_destinations(
        self,
        *,
        start: int,
        limit: int,
        order_by: DestinationOrder,
        descending: bool,
        name_filter: str | None,
    ) -> tuple[list[Destination], int]:
        """A page of destinations in the order asked (ties by name) and how many match."""
        condition = (
            func.lower(destinations.c.destination).contains(name_filter.lower(), autoescape=True)
            if name_filter
            else None
        )
        column = destinations.c[order_by]
        ordering = [column.desc() if descending else column.asc()]
        if order_by != "destination":
            d = destinations.c.destination
            ordering.append(d.desc() if descending else d.asc())
        query = select(destinations).order_by(*ordering).offset(start).limit(limit)
        count = select(func.count()).select_from(destinations)
        if condition is not None:
            query, count = query.where(condition), count.where(condition)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(count)).scalar_one()
        return [_destination(row) for row in rows], int(total)

    async def rooms_shared_with(
        self, destination: str, *, start: int, limit: int, descending: bool
    ) -> tuple[list[DestinationRoom], int]:
        """Rooms where a user of `destination` is joined now, ordered by room ID, each
        with the stream ordering of that membership (the latest, if several users)."""
        member = current_state_events
        joined = (
            select(
                member.c.room_id,
                func.max(room_memberships.c.stream_ordering).label("stream_ordering"),
            )
            .join(room_memberships, room_memberships.c.event_id == member.c.event_id)
            .where(
                and_(
                    member.c.type == "m.room.member",
                    member.c.membership == "join",
                    member.c.state_key.endswith(f":{destination}", autoescape=True),
                )
            )
            .group_by(member.c.room_id)
            .subquery()
        )
        order = joined.c.room_id.desc() if descending else joined.c.room_id.asc()
        query = select(joined).order_by(order).offset(start).limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(select(func.count()).select_from(joined))).scalar_one()
        return [DestinationRoom(row.room_id, row.stream_ordering) for row in rows], int(total)

    # -- the outbound queue's durable state (federation/queue.py) -------------------------

    async def sendable_stream_orderings(self, event_ids: Iterable[str]) -> dict[str, int]:
        """event_id -> stream ordering, for those of `event_ids` that are in their room's
        timeline (neither outliers, soft-failed nor rejected): what may be sent."""
        ids = list(dict.fromkeys(event_ids))
        found: dict[str, int] = {}
        async with self._db.read() as conn:
            for start in range(0, len(ids), 500):
                query = select(events.c.event_id, events.c.stream_ordering).where(
                    events.c.event_id.in_(ids[start : start + 500]),
                    events.c.outlier.is_(False),
                    events.c.soft_failed.is_(False),
                    events.c.rejected_reason.is_(None),
                )
                for row in await conn.execute(query):
                    found[row.event_id] = row.stream_ordering
        return found

    async def record_destination_rooms(self, entries: Mapping[tuple[str, str], int]) -> None:
        """For each (destination, room_id), the stream ordering of the newest event the
        destination should have there; an older ordering never replaces a newer one."""
        if not entries:
            return
        async with self._db.transaction() as conn:
            statement = insert_for(conn)(destination_rooms)
            newest = case(
                (
                    statement.excluded.stream_ordering > destination_rooms.c.stream_ordering,
                    statement.excluded.stream_ordering,
                ),
                else_=destination_rooms.c.stream_ordering,
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["destination", "room_id"], set_={"stream_ordering": newest}
                ),
                [
                    {"destination": destination, "room_id": room_id, "stream_ordering": ordering}
                    for (destination, room_id), ordering in sorted(entries.items())
                ],
            )

    async def set_last_successful_stream_ordering(self, destination: str, ordering: int) -> None:
        """Everything of ours up to `ordering` that `destination` should have was delivered."""
        async with self._db.transaction() as conn:
            await conn.execute(
                insert_for(conn)(destinations)
                .values(
                    destination=destination,
                    retry_last_ts=0,
                    retry_interval=0,
                    last_successful_stream_ordering=ordering,
                )
                .on_conflict_do_update(
                    index_elements=["destination"],
                    set_={"last_successful_stream_ordering": ordering},
                )
            )

    async def destinations_behind(self, up_to: int | None = None) -> list[str]:
        """Destinations with a room whose newest event for them (at most `up_to`) is past
        what they were last delivered (never delivered counts as nothing delivered):
        those to catch up."""
        delivered = func.coalesce(destinations.c.last_successful_stream_ordering, 0)
        query = (
            select(destination_rooms.c.destination)
            .select_from(
                destination_rooms.outerjoin(
                    destinations, destinations.c.destination == destination_rooms.c.destination
                )
            )
            .where(destination_rooms.c.stream_ordering > delivered)
            .group_by(destination_rooms.c.destination)
            .order_by(destination_rooms.c.destination)
        )
        if up_to is not None:
            query = query.where(destination_rooms.c.stream_ordering <= up_to)
        async with self._db.read() as conn:
            return [row.destination for row in await conn.execute(query)]

    async def catch_up_events(self, destination: str, after: int, limit: int) -> list[CatchUpEvent]:
        """In the rooms where `destination` is owed an event past `after`, the newest one
        (only it: the destination fetches what lies before with get_missing_events), the
        oldest of them first, at most `limit`."""
        query = (
            select(
                events.c.event_id,
                events.c.room_id,
                events.c.json,
                events.c.stream_ordering,
                rooms.c.room_version,
            )
            .select_from(
                destination_rooms.join(
                    events,
                    and_(
                        events.c.room_id == destination_rooms.c.room_id,
                        events.c.stream_ordering == destination_rooms.c.stream_ordering,
                    ),
                ).join(rooms, rooms.c.room_id == events.c.room_id)
            )
            .where(
                destination_rooms.c.destination == destination,
                destination_rooms.c.stream_ordering > after,
                events.c.soft_failed.is_(False),
            )
            .order_by(destination_rooms.c.stream_ordering)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [
                CatchUpEvent(
                    event_id=row.event_id,
                    room_id=row.room_id,
                    room_version=row.room_version,
                    pdu=orjson.loads(row.json),
                    stream_ordering=row.stream_ordering,
                )
                for row in await conn.execute(query)
            ]
