"""Queries over event relations (`m.relates_to`): the children of an event, paginated, and
the per-parent summaries that bundled aggregations and the thread list are made of.

The `event_relations` table is defined beside `events` (storage/events.py), because the
event pipeline writes it in the same transaction as the event. A child whose relation was
redacted no longer counts (spec: "when a child event is redacted then the relationship is
broken"); rejected events never got a relation row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
)

from ranvier.storage.database import Database
from ranvier.storage.events import event_relations, events, redactions

Direction = Literal["b", "f"]
# IN lists are chunked to stay well inside every engine's parameter limit
_CHUNK = 500


@dataclass(frozen=True)
class Position:
    """A point between events of a room: just after the event at (topological, stream).
    `topological` None means a stream-only position (from a sync token)."""

    topological: int | None
    stream: int


@dataclass(frozen=True)
class ChildRow:
    event_id: str
    relates_to_id: str
    relation_type: str
    sender: str
    type: str
    origin_server_ts: int
    topological_ordering: int
    stream_ordering: int


@dataclass(frozen=True)
class ThreadSummaryRow:
    root_id: str
    count: int
    latest_event_id: str


@dataclass(frozen=True)
class ThreadRow:
    root_id: str
    latest_stream_ordering: int


_root = events.alias("root")
# children with their parent ("root"), for relations that only count within one room
_children_with_root = event_relations.join(
    events, events.c.event_id == event_relations.c.event_id
).join(
    _root,
    and_(_root.c.event_id == event_relations.c.relates_to_id, _root.c.room_id == events.c.room_id),
)


def _not_redacted() -> ColumnElement[bool]:
    return ~exists().where(redactions.c.redacts == event_relations.c.event_id)


def _children() -> Select[tuple[str, str, str, str, str, int, int, int]]:
    return select(
        event_relations.c.event_id,
        event_relations.c.relates_to_id,
        event_relations.c.relation_type,
        events.c.sender,
        events.c.type,
        events.c.origin_server_ts,
        events.c.topological_ordering,
        events.c.stream_ordering,
    ).select_from(event_relations.join(events, events.c.event_id == event_relations.c.event_id))


def _row(row: Row[Any]) -> ChildRow:
    return ChildRow(
        event_id=row.event_id,
        relates_to_id=row.relates_to_id,
        relation_type=row.relation_type,
        sender=row.sender,
        type=row.type,
        origin_server_ts=row.origin_server_ts,
        topological_ordering=row.topological_ordering,
        stream_ordering=row.stream_ordering,
    )


def _at_or_before(position: Position) -> ColumnElement[bool]:
    if position.topological is None:
        return events.c.stream_ordering <= position.stream
    return or_(
        events.c.topological_ordering < position.topological,
        and_(
            events.c.topological_ordering == position.topological,
            events.c.stream_ordering <= position.stream,
        ),
    )


async def get_relations(
    db: Database,
    room_id: str,
    parent_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    direction: Direction,
    from_position: Position | None,
    to_position: Position | None,
    limit: int,
    max_depth: int = 1,
) -> list[ChildRow]:
    """Children of `parent_id` in the room (and, with max_depth > 1, their children, through
    children that match the filters), topologically newest first for "b", oldest first for
    "f", within (to, from] going backwards or (from, to] going forwards."""
    base = and_(
        events.c.room_id == room_id,
        events.c.outlier.is_(False),
        events.c.soft_failed.is_(False),
        events.c.rejected_reason.is_(None),
        _not_redacted(),
    )
    if rel_type is not None:
        base = and_(base, event_relations.c.relation_type == rel_type)
    if event_type is not None:
        base = and_(base, events.c.type == event_type)
    columns = _children()
    if max_depth <= 1:
        query = columns.where(base, event_relations.c.relates_to_id == parent_id)
    else:
        tree = (
            select(event_relations.c.event_id, literal(1).label("depth"))
            .select_from(
                event_relations.join(events, events.c.event_id == event_relations.c.event_id)
            )
            .where(base, event_relations.c.relates_to_id == parent_id)
            .cte("relation_tree", recursive=True)
        )
        tree = tree.union_all(
            select(event_relations.c.event_id, tree.c.depth + 1)
            .select_from(
                event_relations.join(events, events.c.event_id == event_relations.c.event_id).join(
                    tree, event_relations.c.relates_to_id == tree.c.event_id
                )
            )
            .where(base, tree.c.depth < max_depth)
        )
        query = columns.where(event_relations.c.event_id.in_(select(tree.c.event_id)))
    if direction == "b":
        if from_position is not None:
            query = query.where(_at_or_before(from_position))
        if to_position is not None:
            query = query.where(~_at_or_before(to_position))
        order = (events.c.topological_ordering.desc(), events.c.stream_ordering.desc())
    else:
        if from_position is not None:
            query = query.where(~_at_or_before(from_position))
        if to_position is not None:
            query = query.where(_at_or_before(to_position))
        order = (events.c.topological_ordering.asc(), events.c.stream_ordering.asc())
    query = query.order_by(*order).limit(limit)
    async with db.read() as conn:
        return [_row(row) for row in await conn.execute(query)]


async def get_relation_types_of(db: Database, parent_ids: Iterable[str]) -> dict[str, set[str]]:
    """parent ID -> the relation types its children have, for parents with any (redacted
    children included: a cheap first look that spares most events the real queries)."""
    ids = list(dict.fromkeys(parent_ids))
    found: dict[str, set[str]] = {}
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(event_relations.c.relates_to_id, event_relations.c.relation_type)
                .where(event_relations.c.relates_to_id.in_(ids[start : start + _CHUNK]))
                .distinct()
            )
            for row in await conn.execute(query):
                found.setdefault(row.relates_to_id, set()).add(row.relation_type)
    return found


async def get_children_of(
    db: Database, parent_ids: Iterable[str], rel_types: Sequence[str]
) -> list[ChildRow]:
    """Every unredacted child of the parents with one of the relation types, oldest first.
    For relations with few children per parent (edits, references)."""
    ids = list(dict.fromkeys(parent_ids))
    found: list[ChildRow] = []
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (
                _children()
                .where(
                    event_relations.c.relates_to_id.in_(ids[start : start + _CHUNK]),
                    event_relations.c.relation_type.in_(list(rel_types)),
                    _not_redacted(),
                )
                .order_by(events.c.stream_ordering)
            )
            found.extend(_row(row) for row in await conn.execute(query))
    return found


async def get_thread_summaries(
    db: Database, root_ids: Iterable[str]
) -> dict[str, ThreadSummaryRow]:
    """root ID -> the number of unredacted m.thread children and the topologically latest."""
    ids = list(dict.fromkeys(root_ids))
    found: dict[str, ThreadSummaryRow] = {}
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            ranked = (
                select(
                    event_relations.c.relates_to_id,
                    event_relations.c.event_id,
                    func.count()
                    .over(partition_by=event_relations.c.relates_to_id)
                    .label("thread_count"),
                    func.row_number()
                    .over(
                        partition_by=event_relations.c.relates_to_id,
                        order_by=(
                            events.c.topological_ordering.desc(),
                            events.c.stream_ordering.desc(),
                        ),
                    )
                    .label("newest_first"),
                )
                .select_from(_children_with_root)
                .where(
                    event_relations.c.relates_to_id.in_(ids[start : start + _CHUNK]),
                    event_relations.c.relation_type == "m.thread",
                    _not_redacted(),
                )
                .subquery()
            )
            query = select(ranked).where(ranked.c.newest_first == 1)
            for row in await conn.execute(query):
                found[row.relates_to_id] = ThreadSummaryRow(
                    row.relates_to_id, int(row.thread_count), row.event_id
                )
    return found


async def get_thread_events_newest_first(db: Database, root_id: str, limit: int) -> list[str]:
    """IDs of a thread's unredacted events, topologically newest first."""
    query = (
        select(event_relations.c.event_id)
        .select_from(_children_with_root)
        .where(
            event_relations.c.relates_to_id == root_id,
            event_relations.c.relation_type == "m.thread",
            _not_redacted(),
        )
        .order_by(events.c.topological_ordering.desc(), events.c.stream_ordering.desc())
        .limit(limit)
    )
    async with db.read() as conn:
        return [str(value) for value in (await conn.execute(query)).scalars()]


async def get_threads_participated(db: Database, root_ids: Iterable[str], user_id: str) -> set[str]:
    """The roots among `root_ids` with an unredacted m.thread child sent by the user."""
    ids = list(dict.fromkeys(root_ids))
    found: set[str] = set()
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(event_relations.c.relates_to_id)
                .distinct()
                .select_from(_children_with_root)
                .where(
                    event_relations.c.relates_to_id.in_(ids[start : start + _CHUNK]),
                    event_relations.c.relation_type == "m.thread",
                    events.c.sender == user_id,
                    _not_redacted(),
                )
            )
            found.update(str(value) for value in (await conn.execute(query)).scalars())
    return found


async def get_threads(
    db: Database,
    room_id: str,
    *,
    participant: str | None,
    before_stream: int | None,
    limit: int,
) -> list[ThreadRow]:
    """Thread roots in the room, by their latest unredacted m.thread child, newest first;
    with `participant`, only threads they started or replied in; with `before_stream`, only
    threads whose latest child came before that stream position.

    Threads are ordered by stream position, which for events sent on this server is their
    topological order too; a keyset on one column keeps the pagination a single query."""
    latest = func.max(events.c.stream_ordering).label("latest")
    query = (
        select(event_relations.c.relates_to_id, latest)
        .select_from(_children_with_root)
        .where(
            event_relations.c.relation_type == "m.thread",
            events.c.room_id == room_id,
            _not_redacted(),
        )
        .group_by(event_relations.c.relates_to_id)
    )
    if participant is not None:
        replied = (
            select(event_relations.c.relates_to_id)
            .select_from(
                event_relations.join(events, events.c.event_id == event_relations.c.event_id)
            )
            .where(
                event_relations.c.relation_type == "m.thread",
                events.c.room_id == room_id,
                events.c.sender == participant,
            )
        )
        query = query.where(
            or_(_root.c.sender == participant, event_relations.c.relates_to_id.in_(replied))
        )
    if before_stream is not None:
        query = query.having(latest < before_stream)
    query = query.order_by(latest.desc(), event_relations.c.relates_to_id).limit(limit)
    async with db.read() as conn:
        return [ThreadRow(row.relates_to_id, int(row.latest)) for row in await conn.execute(query)]
