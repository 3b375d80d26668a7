"""The room DAG: events as full PDUs, their prev and auth edges, forward extremities,
transaction IDs for idempotent sends, redactions and relations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata
from ranvier.storage.rooms import rooms

events = Table(
    "events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("stream_ordering", BigInteger, nullable=False),
    Column("topological_ordering", BigInteger, nullable=False),
    Column("room_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("state_key", Text, nullable=True),
    Column("sender", Text, nullable=False),
    Column("origin_server_ts", BigInteger, nullable=False),
    Column("received_ts", BigInteger, nullable=False),
    Column("outlier", Boolean, nullable=False, server_default=false()),
    Column("rejected_reason", Text, nullable=True),
    Column("json", Text, nullable=False),
    # passed the auth rules at its own place in the DAG but not against current state
    Column("soft_failed", Boolean, nullable=False, server_default=false()),
    # named as PostgreSQL named it when 0006_rooms created it unnamed (SQLite keeps it
    # unnamed): the name a later migration must use to alter it
    UniqueConstraint("stream_ordering", name="events_stream_ordering_key"),
    Index("ix_events_room_stream", "room_id", "stream_ordering"),
    Index("ix_events_room_topological", "room_id", "topological_ordering", "stream_ordering"),
)

event_edges = Table(
    "event_edges",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("prev_event_id", Text, primary_key=True),
    Index("ix_event_edges_prev", "prev_event_id"),
)

event_auth = Table(
    "event_auth",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("auth_id", Text, primary_key=True),
)

room_forward_extremities = Table(
    "room_forward_extremities",
    metadata,
    Column("room_id", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
)

event_txn_ids = Table(
    "event_txn_ids",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("device_id", Text, primary_key=True),
    Column("endpoint", Text, primary_key=True),
    Column("txn_id", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("inserted_ts", BigInteger, nullable=False),
    Index("ix_event_txn_ids_event", "event_id"),
)

redactions = Table(
    "redactions",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("redacts", Text, nullable=False),
    Index("ix_redactions_redacts", "redacts"),
)

event_relations = Table(
    "event_relations",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("relates_to_id", Text, nullable=False),
    Column("relation_type", Text, nullable=False),
    Column("aggregation_key", Text, nullable=True),
    Index("ix_event_relations_parent", "relates_to_id"),
)


@dataclass(frozen=True)
class EventRow:
    """One event to store, with what persistence decided about it."""

    event_id: str
    room_id: str
    pdu: dict[str, Any]
    type: str
    state_key: str | None
    sender: str
    depth: int
    origin_server_ts: int
    prev_event_ids: Sequence[str]
    auth_event_ids: Sequence[str]
    stream_ordering: int
    received_ts: int
    rejected_reason: str | None = None
    outlier: bool = False
    soft_failed: bool = False
    redacts: str | None = None
    # (relates_to_id, rel_type, aggregation key) from content["m.relates_to"]
    relation: tuple[str, str, str | None] | None = None
    # (user_id, device_id, endpoint, txn_id) of the client request that sent it
    txn: tuple[str, str, str, str] | None = None


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    room_id: str
    room_version: str
    pdu: dict[str, Any]
    stream_ordering: int
    outlier: bool
    rejected_reason: str | None


class TransactionAlreadySent(Exception):
    """A transaction ID of the events being inserted was used before: a client's retry of
    a send that was persisted (before a restart, say), which the sender resolves."""


async def insert_events(conn: AsyncConnection, rows: Sequence[EventRow]) -> None:
    """Write a batch of events and their edges in the caller's transaction."""
    if not rows:
        return
    await conn.execute(
        insert(events),
        [
            {
                "event_id": row.event_id,
                "stream_ordering": row.stream_ordering,
                "topological_ordering": row.depth,
                "room_id": row.room_id,
                "type": row.type,
                "state_key": row.state_key,
                "sender": row.sender,
                "origin_server_ts": row.origin_server_ts,
                "received_ts": row.received_ts,
                "outlier": row.outlier,
                "rejected_reason": row.rejected_reason,
                "soft_failed": row.soft_failed,
                "json": orjson.dumps(row.pdu).decode(),
            }
            for row in rows
        ],
    )
    edges = [
        {"event_id": row.event_id, "prev_event_id": prev}
        for row in rows
        for prev in dict.fromkeys(row.prev_event_ids)
    ]
    if edges:
        await conn.execute(insert(event_edges), edges)
    auth = [
        {"event_id": row.event_id, "auth_id": auth_id}
        for row in rows
        for auth_id in dict.fromkeys(row.auth_event_ids)
    ]
    if auth:
        await conn.execute(insert(event_auth), auth)
    await _insert_annotations(conn, rows)
    txn_rows = [
        {
            "user_id": row.txn[0],
            "device_id": row.txn[1],
            "endpoint": row.txn[2],
            "txn_id": row.txn[3],
            "event_id": row.event_id,
            "inserted_ts": row.received_ts,
        }
        for row in rows
        if row.txn is not None
    ]
    if txn_rows:
        try:
            await conn.execute(insert(event_txn_ids), txn_rows)
        except IntegrityError as exc:
            raise TransactionAlreadySent from exc


async def _insert_annotations(conn: AsyncConnection, rows: Sequence[EventRow]) -> None:
    """The redactions and relations of events clients see."""
    redaction_rows = [
        {"event_id": row.event_id, "redacts": row.redacts}
        for row in rows
        if row.redacts is not None and _served(row)
    ]
    if redaction_rows:
        await conn.execute(insert(redactions), redaction_rows)
    relation_rows = [
        {
            "event_id": row.event_id,
            "relates_to_id": row.relation[0],
            "relation_type": row.relation[1],
            "aggregation_key": row.relation[2],
        }
        for row in rows
        if row.relation is not None and _served(row)
    ]
    if relation_rows:
        await conn.execute(insert(event_relations), relation_rows)


async def promote_outliers(conn: AsyncConnection, rows: Sequence[EventRow]) -> None:
    """Events stored as outliers that now take their place in the room (their prev events
    became known): their rows move to the given stream ordering and flags; their edges
    were written with them."""
    for row in rows:
        await conn.execute(
            update(events)
            .where(events.c.event_id == row.event_id, events.c.outlier == true())
            .values(
                outlier=False,
                stream_ordering=row.stream_ordering,
                soft_failed=row.soft_failed,
                rejected_reason=row.rejected_reason,
                received_ts=row.received_ts,
            )
        )
    await _insert_annotations(conn, rows)


async def get_outlier_flags(db: Database, event_ids: Iterable[str]) -> dict[str, bool]:
    """event ID -> whether it is stored as an outlier, for the events stored."""
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, bool] = {}
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = select(events.c.event_id, events.c.outlier).where(
                events.c.event_id.in_(ids[start : start + 500])
            )
            for row in await conn.execute(query):
                found[row.event_id] = bool(row.outlier)
    return found


def _served(row: EventRow) -> bool:
    """Whether clients may see the event: its redactions and relations count."""
    return row.rejected_reason is None and not row.soft_failed and not row.outlier


async def replace_forward_extremities(
    conn: AsyncConnection, room_id: str, event_ids: Iterable[str]
) -> None:
    new = list(dict.fromkeys(event_ids))
    in_room = room_forward_extremities.c.room_id == room_id
    if len(new) == 1:
        # every local send: one extremity replaces one, in one statement
        only_one = (
            select(func.count())
            .select_from(room_forward_extremities)
            .where(in_room)
            .scalar_subquery()
            == 1
        )
        moved = await conn.execute(
            update(room_forward_extremities).where(in_room, only_one).values(event_id=new[0])
        )
        if moved.rowcount == 1:
            return
    await conn.execute(delete(room_forward_extremities).where(in_room))
    if new:
        await conn.execute(
            insert(room_forward_extremities),
            [{"room_id": room_id, "event_id": event_id} for event_id in new],
        )


async def get_forward_extremities(db: Database, room_id: str) -> list[tuple[str, int]]:
    """(event_id, depth) of the room's forward extremities."""
    query = (
        select(events.c.event_id, events.c.topological_ordering)
        .select_from(
            room_forward_extremities.join(
                events, events.c.event_id == room_forward_extremities.c.event_id
            )
        )
        .where(room_forward_extremities.c.room_id == room_id)
        .order_by(events.c.topological_ordering, events.c.event_id)
    )
    async with db.read() as conn:
        return [(row.event_id, row.topological_ordering) for row in await conn.execute(query)]


async def get_events(db: Database, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, StoredEvent] = {}
    if not ids:
        return found
    async with db.read() as conn:
        # chunks keep the IN list well inside every engine's parameter limit
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = (
                select(
                    events.c.event_id,
                    events.c.room_id,
                    events.c.json,
                    events.c.stream_ordering,
                    events.c.outlier,
                    events.c.rejected_reason,
                    rooms.c.room_version,
                )
                .select_from(events.join(rooms, rooms.c.room_id == events.c.room_id))
                .where(events.c.event_id.in_(chunk))
            )
            for row in await conn.execute(query):
                found[row.event_id] = StoredEvent(
                    event_id=row.event_id,
                    room_id=row.room_id,
                    room_version=row.room_version,
                    pdu=orjson.loads(row.json),
                    stream_ordering=row.stream_ordering,
                    outlier=row.outlier,
                    rejected_reason=row.rejected_reason,
                )
    return found


async def min_stream_ordering(db: Database) -> int:
    """The lowest stream ordering used, or 0: outliers, rejected and soft-failed events
    take orderings below zero, counting down from here."""
    async with db.read() as conn:
        value = (await conn.execute(select(func.min(events.c.stream_ordering)))).scalar()
    return min(int(value or 0), 0)


async def max_stream_ordering(db: Database) -> int:
    async with db.read() as conn:
        value = (await conn.execute(select(func.max(events.c.stream_ordering)))).scalar()
    return int(value or 0)


async def get_event_ids_for_txns(
    db: Database, txns: Iterable[tuple[str, str, str, str]]
) -> dict[tuple[str, str, str, str], str]:
    """(user_id, device_id, endpoint, txn_id) -> the event sent with it, for those used."""
    wanted = list(dict.fromkeys(txns))
    if not wanted:
        return {}
    t = event_txn_ids.c
    query = select(t.user_id, t.device_id, t.endpoint, t.txn_id, t.event_id).where(
        or_(
            *(
                and_(
                    t.user_id == user_id,
                    t.device_id == device_id,
                    t.endpoint == endpoint,
                    t.txn_id == txn_id,
                )
                for user_id, device_id, endpoint, txn_id in wanted
            )
        )
    )
    async with db.read() as conn:
        return {
            (row.user_id, row.device_id, row.endpoint, row.txn_id): str(row.event_id)
            for row in await conn.execute(query)
        }


async def get_redactions_of(db: Database, event_ids: Iterable[str]) -> dict[str, list[str]]:
    """redacted event ID -> IDs of the redaction events naming it, oldest first.

    Whether a redaction applies (the redacter's power) is the caller's rule, not ours.
    """
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, list[str]] = {}
    if not ids:
        return found
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = (
                select(redactions.c.redacts, redactions.c.event_id)
                .select_from(redactions.join(events, events.c.event_id == redactions.c.event_id))
                .where(redactions.c.redacts.in_(ids[start : start + 500]))
                .order_by(events.c.stream_ordering)
            )
            for row in await conn.execute(query):
                found.setdefault(row.redacts, []).append(row.event_id)
    return found


# built once: every sync that serves its user's own events runs it
_EVENT_TXNS = select(
    event_txn_ids.c.event_id,
    event_txn_ids.c.user_id,
    event_txn_ids.c.device_id,
    event_txn_ids.c.txn_id,
).where(event_txn_ids.c.event_id.in_(bindparam("event_ids", expanding=True)))


async def get_event_txns(db: Database, event_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """event ID -> (user, device, transaction ID) it was sent with, for those sent with one
    (by the index on event_id, whoever sent them)."""
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, tuple[str, str, str]] = {}
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            rows = await conn.execute(_EVENT_TXNS, {"event_ids": ids[start : start + 500]})
            for event_id, user_id, device_id, txn_id in rows:
                found[event_id] = (user_id, device_id, txn_id)
    return found


async def get_stream_orderings(db: Database, event_ids: Iterable[str]) -> dict[str, int]:
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, int] = {}
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = select(events.c.event_id, events.c.stream_ordering).where(
                events.c.event_id.in_(ids[start : start + 500])
            )
            for row in await conn.execute(query):
                found[row.event_id] = row.stream_ordering
    return found


# -- reading a room's timeline -----------------------------------------------------------------
# A timeline position is the pair (topological_ordering, stream_ordering); see
# ranvier/streams/tokens.py. Outliers, rejected and soft-failed events are not in any
# timeline.


def _at_or_before(depth: int, stream: int) -> Any:
    return or_(
        events.c.topological_ordering < depth,
        and_(events.c.topological_ordering == depth, events.c.stream_ordering <= stream),
    )


def _in_timeline(room_id: str) -> Any:
    return and_(
        events.c.room_id == room_id,
        events.c.outlier == false(),
        events.c.rejected_reason.is_(None),
        events.c.soft_failed == false(),
    )


@dataclass(frozen=True)
class TimelinePosition:
    event_id: str
    depth: int
    stream: int


async def paginate_room_events(
    db: Database,
    room_id: str,
    *,
    backwards: bool,
    start: tuple[int, int] | None,
    stop: tuple[int, int] | None,
    limit: int,
) -> list[TimelinePosition]:
    """Up to `limit` events of a room's timeline in order of travel.

    Backwards: events at or before `start` (None: the newest) and after `stop`.
    Forwards: events after `start` (None: the oldest) and at or before `stop`.
    """
    query = select(
        events.c.event_id, events.c.topological_ordering, events.c.stream_ordering
    ).where(_in_timeline(room_id))
    if backwards:
        if start is not None:
            query = query.where(_at_or_before(*start))
        if stop is not None:
            query = query.where(not_(_at_or_before(*stop)))
        query = query.order_by(
            events.c.topological_ordering.desc(), events.c.stream_ordering.desc()
        )
    else:
        if start is not None:
            query = query.where(not_(_at_or_before(*start)))
        if stop is not None:
            query = query.where(_at_or_before(*stop))
        query = query.order_by(events.c.topological_ordering, events.c.stream_ordering)
    async with db.read() as conn:
        rows = await conn.execute(query.limit(limit))
        return [
            TimelinePosition(row.event_id, row.topological_ordering, row.stream_ordering)
            for row in rows
        ]


async def get_timeline_position(
    db: Database, event_id: str, *, include_outliers: bool = False
) -> tuple[str, TimelinePosition] | None:
    """(room_id, position) of an event in its room's timeline; with `include_outliers`,
    also where an event a history purge took out of the timeline stood."""
    query = select(events.c.room_id, events.c.topological_ordering, events.c.stream_ordering).where(
        events.c.event_id == event_id,
        events.c.rejected_reason.is_(None),
        events.c.soft_failed == false(),
    )
    if not include_outliers:
        query = query.where(events.c.outlier == false())
    async with db.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return row.room_id, TimelinePosition(event_id, row.topological_ordering, row.stream_ordering)


async def latest_position_at_stream(
    db: Database, room_id: str, stream: int
) -> TimelinePosition | None:
    """The room's last timeline event with a stream position at or below `stream`."""
    query = (
        select(events.c.event_id, events.c.topological_ordering, events.c.stream_ordering)
        .where(_in_timeline(room_id), events.c.stream_ordering <= stream)
        .order_by(events.c.topological_ordering.desc(), events.c.stream_ordering.desc())
        .limit(1)
    )
    async with db.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return TimelinePosition(row.event_id, row.topological_ordering, row.stream_ordering)


async def event_closest_to_ts(
    db: Database, room_id: str, ts: int, *, forwards: bool
) -> tuple[str, int] | None:
    """(event_id, origin_server_ts) of the first event at or after `ts` (forwards) or the
    last at or before it (backwards)."""
    query = select(events.c.event_id, events.c.origin_server_ts).where(_in_timeline(room_id))
    if forwards:
        query = query.where(events.c.origin_server_ts >= ts).order_by(
            events.c.origin_server_ts, events.c.stream_ordering
        )
    else:
        query = query.where(events.c.origin_server_ts <= ts).order_by(
            events.c.origin_server_ts.desc(), events.c.stream_ordering.desc()
        )
    async with db.read() as conn:
        row = (await conn.execute(query.limit(1))).first()
    return None if row is None else (row.event_id, row.origin_server_ts)


# -- walking the DAG for other servers (backfill, get_missing_events, auth chains) -----------


@dataclass(frozen=True)
class DagStep:
    """An edge from `event_id` back to `prev_event_id`, with where the prev event stands."""

    event_id: str
    prev_event_id: str
    depth: int
    stream: int
    outlier: bool


async def get_prev_steps(db: Database, room_id: str, event_ids: Iterable[str]) -> list[DagStep]:
    """The prev edges of `event_ids` to events this server holds in `room_id`, newest prev
    event first (depth, then stream position, descending)."""
    ids = list(dict.fromkeys(event_ids))
    steps: list[DagStep] = []
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = (
                select(
                    event_edges.c.event_id,
                    event_edges.c.prev_event_id,
                    events.c.topological_ordering,
                    events.c.stream_ordering,
                    events.c.outlier,
                )
                .select_from(
                    event_edges.join(events, events.c.event_id == event_edges.c.prev_event_id)
                )
                .where(
                    event_edges.c.event_id.in_(ids[start : start + 500]),
                    events.c.room_id == room_id,
                )
            )
            steps.extend(
                DagStep(
                    row.event_id,
                    row.prev_event_id,
                    row.topological_ordering,
                    row.stream_ordering,
                    row.outlier,
                )
                for row in await conn.execute(query)
            )
    steps.sort(key=lambda step: (-step.depth, -step.stream, step.prev_event_id))
    return steps


async def get_auth_chain_ids(db: Database, event_ids: Iterable[str]) -> set[str]:
    """Every event reachable from `event_ids` through auth edges, not counting the given
    events themselves unless another of them reaches them; one recursive query."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    chain = (
        select(event_auth.c.auth_id.label("event_id"))
        .where(event_auth.c.event_id.in_(ids))
        .cte("auth_chain", recursive=True)
    )
    # UNION (not UNION ALL) stops the walk at events already reached
    chain = chain.union(
        select(event_auth.c.auth_id).where(event_auth.c.event_id == chain.c.event_id)
    )
    async with db.read() as conn:
        return {row.event_id for row in await conn.execute(select(chain.c.event_id))}


async def get_timeline_event_ids(db: Database, event_ids: Iterable[str]) -> set[str]:
    """Those of `event_ids` held here with a place in the DAG (not outliers)."""
    ids = list(dict.fromkeys(event_ids))
    found: set[str] = set()
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = select(events.c.event_id).where(
                events.c.event_id.in_(ids[start : start + 500]), events.c.outlier == false()
            )
            found.update(row.event_id for row in await conn.execute(query))
    return found


async def get_unserved_ids(db: Database, event_ids: Iterable[str]) -> set[str]:
    """Those of `event_ids` held here in the DAG (not outliers) but soft-failed or
    rejected: never forward extremities, never served."""
    ids = list(dict.fromkeys(event_ids))
    found: set[str] = set()
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            query = select(events.c.event_id).where(
                events.c.event_id.in_(ids[start : start + 500]),
                events.c.outlier == false(),
                or_(events.c.soft_failed == true(), events.c.rejected_reason.is_not(None)),
            )
            found.update(row.event_id for row in await conn.execute(query))
    return found


async def get_backfill_points(db: Database, room_id: str, limit: int = 20) -> list[str]:
    """Events of the room's DAG here that cite prev events this server does not hold in
    the DAG (unknown, or only outliers): where older history could be asked for, the
    oldest first."""
    prev = events.alias("prev")
    query = (
        select(events.c.event_id, events.c.topological_ordering)
        .select_from(
            events.join(event_edges, event_edges.c.event_id == events.c.event_id).outerjoin(
                prev,
                and_(prev.c.event_id == event_edges.c.prev_event_id, prev.c.outlier == false()),
            )
        )
        .where(events.c.room_id == room_id, events.c.outlier == false(), prev.c.event_id.is_(None))
        .distinct()
        .order_by(events.c.topological_ordering, events.c.event_id)
        .limit(limit)
    )
    async with db.read() as conn:
        return [row.event_id for row in await conn.execute(query)]
