"""Purging a room's history before a point (Synapse's Purge History admin API).

Events older than the point (a smaller depth, `topological_ordering`) leave the room's
timeline: non-state events from other servers are deleted, with the rows keyed by them;
state events are kept, marked outliers, because the room's state (state groups, current
state, memberships) refers to them; local non-state events are deleted too when asked,
else kept as outliers like state. Outliers are in no timeline (/messages, /context, sync,
relations) and a purged event leaves the search index and the unread counts. The point
itself, the forward extremities and the current state are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, false, func, not_, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage import search
from ranvier.storage.database import Database
from ranvier.storage.event_push_actions import event_push_actions
from ranvier.storage.events import (
    event_auth,
    event_edges,
    event_relations,
    event_txn_ids,
    events,
    redactions,
    room_forward_extremities,
)
from ranvier.storage.rooms import rooms
from ranvier.storage.state import event_to_state_groups

# Tables keyed by the events a purge deletes (by column), cleared with them. The search
# index (raw SQL) and the push actions are cleared for kept events too.
DELETED_WITH_EVENT = (
    (event_edges, "event_id"),
    (event_auth, "event_id"),
    (event_txn_ids, "event_id"),
    (redactions, "event_id"),
    (event_relations, "event_id"),
    (event_to_state_groups, "event_id"),
)
# Tables with an event ID that a purge leaves alone, and why: they name state events
# (never deleted), or a pointer the feature keeps though its event goes (a receipt, an
# admin's report), or the room's state groups, which keep referring to state events.
KEPT_ON_HISTORY_PURGE = frozenset(
    {
        "room_memberships",
        "current_state_events",
        "state_groups",
        "state_group_state",
        "room_forward_extremities",
        "receipts",
        "event_reports",
    }
)


@dataclass(frozen=True)
class PurgePoint:
    """The event history is purged up to (it stays), and its place in the timeline."""

    event_id: str
    room_id: str
    depth: int


@dataclass(frozen=True)
class PurgedBatch:
    deleted: list[str]
    kept_as_outliers: list[str]


class HistoryPurgeStore:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def room_exists(self, room_id: str) -> bool:
        query = select(rooms.c.room_id).where(rooms.c.room_id == room_id)
        async with self._db.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def point_at_event(self, event_id: str) -> PurgePoint | None:
        query = select(events.c.room_id, events.c.topological_ordering).where(
            events.c.event_id == event_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else PurgePoint(event_id, row.room_id, row.topological_ordering)

    async def point_at_ts(self, room_id: str, ts: int) -> PurgePoint | None:
        """The room's first timeline event received at or after `ts`, or its last one if
        none was: what came before it was received before `ts`."""
        in_timeline = and_(
            events.c.room_id == room_id,
            events.c.outlier == false(),
            events.c.rejected_reason.is_(None),
        )
        columns = (events.c.event_id, events.c.topological_ordering)
        first_after = (
            select(*columns)
            .where(in_timeline, events.c.received_ts >= ts)
            .order_by(events.c.stream_ordering)
            .limit(1)
        )
        last = (
            select(*columns).where(in_timeline).order_by(events.c.stream_ordering.desc()).limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(first_after)).first()
            if row is None:
                row = (await conn.execute(last)).first()
        if row is None:
            return None
        return PurgePoint(row.event_id, room_id, row.topological_ordering)

    async def max_extremity_depth(self, room_id: str) -> int | None:
        query = (
            select(func.max(events.c.topological_ordering))
            .select_from(
                room_forward_extremities.join(
                    events, events.c.event_id == room_forward_extremities.c.event_id
                )
            )
            .where(room_forward_extremities.c.room_id == room_id)
        )
        async with self._db.read() as conn:
            value = (await conn.execute(query)).scalar()
        return None if value is None else int(value)

    async def purge_batch(
        self, point: PurgePoint, *, delete_local_events: bool, limit: int
    ) -> PurgedBatch:
        """Purge up to `limit` of the events before `point`, oldest first, in one
        transaction; an empty batch means the purge is done. Each batch leaves the events
        it did not reach as they were, so a purge stopped between batches is whole as far
        as it went, and running it again finishes it."""
        local = events.c.sender.endswith(":" + self._server_name, autoescape=True)
        deletable = and_(
            events.c.state_key.is_(None), true() if delete_local_events else not_(local)
        )
        extremities = select(room_forward_extremities.c.event_id).where(
            room_forward_extremities.c.room_id == point.room_id
        )
        query = (
            select(events.c.event_id, deletable.label("deletable"))
            .where(
                events.c.room_id == point.room_id,
                events.c.topological_ordering < point.depth,
                events.c.event_id.not_in(extremities),
                # what is left to do: events still in the timeline, and outliers to delete
                or_(events.c.outlier == false(), deletable),
            )
            .order_by(events.c.topological_ordering, events.c.stream_ordering)
            .limit(limit)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
            deleted = [row.event_id for row in rows if row.deletable]
            kept = [row.event_id for row in rows if not row.deletable]
            await _purge(conn, deleted, kept)
        return PurgedBatch(deleted, kept)


async def _purge(conn: AsyncConnection, deleted: Sequence[str], kept: Sequence[str]) -> None:
    purged = [*deleted, *kept]
    if not purged:
        return
    # before the events go: on SQLite the index is found through them
    await search.remove_events(conn, purged)
    await conn.execute(delete(event_push_actions).where(event_push_actions.c.event_id.in_(purged)))
    if deleted:
        for swept, key in DELETED_WITH_EVENT:
            await conn.execute(delete(swept).where(swept.c[key].in_(deleted)))
        await conn.execute(delete(events).where(events.c.event_id.in_(deleted)))
    if kept:
        await conn.execute(update(events).where(events.c.event_id.in_(kept)).values(outlier=True))


__all__ = [
    "DELETED_WITH_EVENT",
    "KEPT_ON_HISTORY_PURGE",
    "HistoryPurgeStore",
    "PurgePoint",
    "PurgedBatch",
]
