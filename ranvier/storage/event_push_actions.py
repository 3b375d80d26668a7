"""event_push_actions and push_read_positions: which events notify (or highlight) which
user, and how far each user has read each room (per thread), from their receipts.

Unread counts are the actions after the read position that applies to them: the later of
the room's unthreaded receipt ("" thread) and the receipt of the event's own thread. Rows
are kept after they are read, for /notifications ("read": true).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata

event_push_actions = Table(
    "event_push_actions",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("room_id", Text, nullable=False),
    Column("stream_ordering", BigInteger, nullable=False),
    Column("thread_id", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("highlight", Boolean, nullable=False),
    Column("received_ts", BigInteger, nullable=False),
    Index("ix_event_push_actions_user_room", "user_id", "room_id", "stream_ordering"),
    Index("ix_event_push_actions_user_stream", "user_id", "stream_ordering"),
)

push_read_positions = Table(
    "push_read_positions",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("room_id", Text, primary_key=True),
    Column("thread_id", Text, primary_key=True),
    Column("stream_ordering", BigInteger, nullable=False),
)

MAIN_THREAD = "main"
# the thread_id of an unthreaded receipt, which reads every thread
UNTHREADED = ""
# chunks keep IN lists inside every engine's parameter limit
_CHUNK = 500


@dataclass(frozen=True)
class PushAction:
    event_id: str
    user_id: str
    room_id: str
    stream_ordering: int
    thread_id: str
    actions: list[Any]
    highlight: bool
    received_ts: int


@dataclass(frozen=True)
class Counts:
    notifications: int = 0
    highlights: int = 0


@dataclass(frozen=True)
class RoomCounts:
    # thread_id ("main" or a root event ID) -> counts
    threads: dict[str, Counts]


async def _read_positions(
    conn: AsyncConnection, user_id: str, room_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for start in range(0, len(room_ids), _CHUNK):
        rows = await conn.execute(
            select(push_read_positions).where(
                push_read_positions.c.user_id == user_id,
                push_read_positions.c.room_id.in_(room_ids[start : start + _CHUNK]),
            )
        )
        for row in rows:
            found.setdefault(row.room_id, {})[row.thread_id] = int(row.stream_ordering)
    return found


def _is_read(positions: dict[str, int], thread_id: str, stream_ordering: int) -> bool:
    read_up_to = max(positions.get(UNTHREADED, 0), positions.get(thread_id, 0))
    return stream_ordering <= read_up_to


def _unread_counts_query() -> Select[tuple[str, str, int, int]]:
    action = event_push_actions
    unthreaded = push_read_positions.alias("unthreaded")
    in_thread = push_read_positions.alias("in_thread")
    return (
        select(
            action.c.room_id,
            action.c.thread_id,
            func.count().label("notifications"),
            func.sum(case((action.c.highlight, 1), else_=0)).label("highlights"),
        )
        .select_from(
            action.outerjoin(
                unthreaded,
                and_(
                    unthreaded.c.user_id == action.c.user_id,
                    unthreaded.c.room_id == action.c.room_id,
                    unthreaded.c.thread_id == UNTHREADED,
                ),
            ).outerjoin(
                in_thread,
                and_(
                    in_thread.c.user_id == action.c.user_id,
                    in_thread.c.room_id == action.c.room_id,
                    in_thread.c.thread_id == action.c.thread_id,
                ),
            )
        )
        .where(
            action.c.user_id == bindparam("user_id"),
            action.c.room_id.in_(bindparam("room_ids", expanding=True)),
            action.c.stream_ordering > func.coalesce(unthreaded.c.stream_ordering, 0),
            action.c.stream_ordering > func.coalesce(in_thread.c.stream_ordering, 0),
        )
        .group_by(action.c.room_id, action.c.thread_id)
    )


# built once: every sync runs it (building costs more than running it)
_UNREAD_COUNTS = _unread_counts_query()


class EventPushActionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_in(self, conn: AsyncConnection, actions: Sequence[PushAction]) -> None:
        """Record actions in the caller's transaction (the one persisting their events)."""
        if actions:
            await conn.execute(
                insert_for(conn)(event_push_actions).on_conflict_do_nothing(
                    index_elements=["event_id", "user_id"]
                ),
                [
                    {
                        "event_id": a.event_id,
                        "user_id": a.user_id,
                        "room_id": a.room_id,
                        "stream_ordering": a.stream_ordering,
                        "thread_id": a.thread_id,
                        "actions": orjson.dumps(a.actions).decode(),
                        "highlight": a.highlight,
                        "received_ts": a.received_ts,
                    }
                    for a in actions
                ],
            )

    async def mark_read(
        self, user_id: str, room_id: str, thread_id: str, stream_ordering: int
    ) -> None:
        """Move the read position forward (never back: receipts may arrive out of order)."""
        async with self._db.transaction() as conn:
            await self.mark_read_in(conn, user_id, room_id, thread_id, stream_ordering)

    async def mark_read_in(
        self,
        conn: AsyncConnection,
        user_id: str,
        room_id: str,
        thread_id: str,
        stream_ordering: int,
    ) -> None:
        """mark_read in the caller's transaction (the one persisting a join)."""
        current = (
            await conn.execute(
                select(push_read_positions.c.stream_ordering).where(
                    push_read_positions.c.user_id == user_id,
                    push_read_positions.c.room_id == room_id,
                    push_read_positions.c.thread_id == thread_id,
                )
            )
        ).scalar_one_or_none()
        if current is not None and current >= stream_ordering:
            return
        await conn.execute(
            insert_for(conn)(push_read_positions)
            .values(
                user_id=user_id,
                room_id=room_id,
                thread_id=thread_id,
                stream_ordering=stream_ordering,
            )
            .on_conflict_do_update(
                index_elements=["user_id", "room_id", "thread_id"],
                set_={"stream_ordering": stream_ordering},
            )
        )

    async def unread_counts(self, user_id: str, room_ids: Collection[str]) -> dict[str, RoomCounts]:
        """Unread notification and highlight counts per room and thread, for rooms with any.

        Counted by the database: a row is unread past both the room's unthreaded receipt
        and its own thread's receipt (the read history stays for /notifications)."""
        ids = list(dict.fromkeys(room_ids))
        found: dict[str, dict[str, Counts]] = {}
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                params = {"user_id": user_id, "room_ids": ids[start : start + _CHUNK]}
                for row in await conn.execute(_UNREAD_COUNTS, params):
                    found.setdefault(row.room_id, {})[row.thread_id] = Counts(
                        int(row.notifications), int(row.highlights or 0)
                    )
        return {room_id: RoomCounts(threads) for room_id, threads in found.items()}

    async def notifications(
        self, user_id: str, before: int | None, limit: int, only_highlight: bool
    ) -> list[tuple[PushAction, bool]]:
        """The user's notifications, newest first, below stream ordering `before`; each
        with whether it is read."""
        query = select(event_push_actions).where(event_push_actions.c.user_id == user_id)
        if before is not None:
            query = query.where(event_push_actions.c.stream_ordering < before)
        if only_highlight:
            query = query.where(event_push_actions.c.highlight.is_(True))
        query = query.order_by(event_push_actions.c.stream_ordering.desc()).limit(limit)
        async with self._db.read() as conn:
            rows = list(await conn.execute(query))
            positions = await _read_positions(conn, user_id, list({row.room_id for row in rows}))
        return [
            (
                PushAction(
                    event_id=row.event_id,
                    user_id=row.user_id,
                    room_id=row.room_id,
                    stream_ordering=int(row.stream_ordering),
                    thread_id=row.thread_id,
                    actions=orjson.loads(row.actions),
                    highlight=bool(row.highlight),
                    received_ts=int(row.received_ts),
                ),
                _is_read(positions.get(row.room_id, {}), row.thread_id, row.stream_ordering),
            )
            for row in rows
        ]

    async def actions_after(self, user_id: str, after: int, limit: int) -> list[PushAction]:
        """Notifying actions of the user after stream ordering `after`, oldest first: what a
        pusher delivers next."""
        query = (
            select(event_push_actions)
            .where(
                event_push_actions.c.user_id == user_id,
                event_push_actions.c.stream_ordering > after,
            )
            .order_by(event_push_actions.c.stream_ordering)
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = list(await conn.execute(query))
        return [
            PushAction(
                event_id=row.event_id,
                user_id=row.user_id,
                room_id=row.room_id,
                stream_ordering=int(row.stream_ordering),
                thread_id=row.thread_id,
                actions=orjson.loads(row.actions),
                highlight=bool(row.highlight),
                received_ts=int(row.received_ts),
            )
            for row in rows
        ]

    async def unread_after(self, user_id: str, after: int, limit: int) -> list[PushAction]:
        """The user's notifying actions after stream ordering `after` that no receipt has
        read yet, oldest first: what an email notification tells about."""
        found: list[PushAction] = []
        position = after
        while len(found) < limit:
            batch = await self.actions_after(user_id, position, limit)
            if not batch:
                break
            async with self._db.read() as conn:
                positions = await _read_positions(
                    conn, user_id, list({action.room_id for action in batch})
                )
            found += [
                action
                for action in batch
                if not _is_read(
                    positions.get(action.room_id, {}), action.thread_id, action.stream_ordering
                )
            ]
            position = batch[-1].stream_ordering
        return found[:limit]

    async def received_ts_before(self, user_id: str, stream_ordering: int) -> int | None:
        """When the user's notification before stream ordering `stream_ordering` arrived."""
        query = (
            select(event_push_actions.c.received_ts)
            .where(
                event_push_actions.c.user_id == user_id,
                event_push_actions.c.stream_ordering < stream_ordering,
            )
            .order_by(event_push_actions.c.stream_ordering.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else int(found)


__all__ = ["MAIN_THREAD", "UNTHREADED", "EventPushActionStore", "PushAction"]
