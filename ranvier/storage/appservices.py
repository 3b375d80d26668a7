"""Application service transactions: per service, how far each stream has been put into
transactions, and the transactions it has not acknowledged yet, oldest first.

`AppServiceStore` owns both tables. `AppServiceStreams` reads, for the transaction sender,
the ranges of the other streams a service is pushed (room events, receipts, presence,
to-device, device lists) and the membership and alias facts that decide its interest:
read-only views over other domains' tables, kept here so the sender's whole read side is
one file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    false,
    func,
    select,
    update,
)

from ranvier.clock import now_ms
from ranvier.storage.aliases import room_aliases
from ranvier.storage.database import Database, insert_for
from ranvier.storage.device_inbox import device_inbox
from ranvier.storage.device_lists import device_lists_stream
from ranvier.storage.events import events
from ranvier.storage.metadata import metadata
from ranvier.storage.presence import PresenceState, presence
from ranvier.storage.receipts import Receipt, receipts
from ranvier.storage.state import current_state_events

_CHUNK = 500

appservice_state = Table(
    "appservice_state",
    metadata,
    Column("appservice_id", Text, primary_key=True),
    Column("last_txn_id", BigInteger, nullable=False, server_default="0"),
    Column("events_position", BigInteger, nullable=False),
    Column("receipts_position", BigInteger, nullable=False, server_default="0"),
    Column("presence_position", BigInteger, nullable=False, server_default="0"),
    Column("to_device_position", BigInteger, nullable=False, server_default="0"),
    Column("device_lists_position", BigInteger, nullable=False, server_default="0"),
)

appservice_txns = Table(
    "appservice_txns",
    metadata,
    Column("appservice_id", Text, nullable=False),
    Column("txn_id", BigInteger, nullable=False),
    Column("body_json", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("appservice_id", "txn_id"),
)


@dataclass(frozen=True)
class StreamPositions:
    """How far each stream has been put into a service's transactions."""

    events: int
    receipts: int
    presence: int
    to_device: int
    device_lists: int

    def as_row(self) -> dict[str, int]:
        return {
            "events_position": self.events,
            "receipts_position": self.receipts,
            "presence_position": self.presence,
            "to_device_position": self.to_device,
            "device_lists_position": self.device_lists,
        }


@dataclass(frozen=True)
class PendingTransaction:
    txn_id: int
    body: dict[str, Any]


class AppServiceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def positions(self, appservice_id: str, start: StreamPositions) -> StreamPositions:
        """The service's positions; a service seen for the first time starts at `start`
        (now), not at the beginning of history."""
        async with self._db.transaction() as conn:
            await conn.execute(
                insert_for(conn)(appservice_state)
                .values(appservice_id=appservice_id, last_txn_id=0, **start.as_row())
                .on_conflict_do_nothing(index_elements=["appservice_id"])
            )
            row = (
                await conn.execute(
                    select(appservice_state).where(
                        appservice_state.c.appservice_id == appservice_id
                    )
                )
            ).one()
        return StreamPositions(
            events=int(row.events_position),
            receipts=int(row.receipts_position),
            presence=int(row.presence_position),
            to_device=int(row.to_device_position),
            device_lists=int(row.device_lists_position),
        )

    async def pending(self, appservice_id: str) -> PendingTransaction | None:
        """The oldest transaction the service has not acknowledged."""
        query = (
            select(appservice_txns.c.txn_id, appservice_txns.c.body_json)
            .where(appservice_txns.c.appservice_id == appservice_id)
            .order_by(appservice_txns.c.txn_id)
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return PendingTransaction(int(row.txn_id), orjson.loads(row.body_json))

    async def add_transaction(
        self, appservice_id: str, body: Mapping[str, Any], positions: StreamPositions
    ) -> PendingTransaction:
        """Store the next transaction and the positions it reaches, together: from here
        a restart resends it rather than building it again or losing it."""
        where = appservice_state.c.appservice_id == appservice_id
        async with self._db.transaction() as conn:
            last = (
                await conn.execute(select(appservice_state.c.last_txn_id).where(where))
            ).scalar()
            txn_id = int(last or 0) + 1
            await conn.execute(
                appservice_txns.insert().values(
                    appservice_id=appservice_id,
                    txn_id=txn_id,
                    body_json=orjson.dumps(body).decode(),
                    created_ts=now_ms(),
                )
            )
            await conn.execute(
                update(appservice_state)
                .where(where)
                .values(last_txn_id=txn_id, **positions.as_row())
            )
        return PendingTransaction(txn_id, dict(body))

    async def set_positions(self, appservice_id: str, positions: StreamPositions) -> None:
        """Positions moved past what the service has no interest in."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(appservice_state)
                .where(appservice_state.c.appservice_id == appservice_id)
                .values(**positions.as_row())
            )

    async def acknowledged(self, appservice_id: str, txn_id: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(appservice_txns).where(
                    appservice_txns.c.appservice_id == appservice_id,
                    appservice_txns.c.txn_id == txn_id,
                )
            )


@dataclass(frozen=True)
class StreamEvent:
    """What deciding a service's interest needs of a room event, without its JSON."""

    event_id: str
    stream_ordering: int
    room_id: str
    type: str
    state_key: str | None
    sender: str


@dataclass(frozen=True)
class InboxMessage:
    user_id: str
    device_id: str
    stream_id: int
    event: dict[str, Any]


class AppServiceStreams:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def events_after(self, after: int, up_to: int, limit: int) -> list[StreamEvent]:
        """Room events in the timeline with a position in (after, up_to], in stream order."""
        query = (
            select(
                events.c.event_id,
                events.c.stream_ordering,
                events.c.room_id,
                events.c.type,
                events.c.state_key,
                events.c.sender,
            )
            .where(
                events.c.stream_ordering > after,
                events.c.stream_ordering <= up_to,
                events.c.outlier == false(),
                events.c.rejected_reason.is_(None),
                events.c.soft_failed == false(),
            )
            .order_by(events.c.stream_ordering)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [
                StreamEvent(
                    row.event_id,
                    int(row.stream_ordering),
                    row.room_id,
                    row.type,
                    row.state_key,
                    row.sender,
                )
                for row in await conn.execute(query)
            ]

    async def joined_local_members(
        self, room_ids: Collection[str], server_name: str
    ) -> dict[str, list[str]]:
        """room_id -> this server's users joined to it now (every room asked is a key)."""
        ids = list(dict.fromkeys(room_ids))
        found: dict[str, list[str]] = {room_id: [] for room_id in ids}
        member = current_state_events
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(member.c.room_id, member.c.state_key).where(
                    member.c.room_id.in_(ids[start : start + _CHUNK]),
                    member.c.type == "m.room.member",
                    member.c.membership == "join",
                    member.c.state_key.like(f"%:{server_name}"),
                )
                for row in await conn.execute(query):
                    found[row.room_id].append(row.state_key)
        return found

    async def joined_rooms_of(self, user_ids: Collection[str]) -> dict[str, set[str]]:
        """user_id -> the rooms they are joined to now."""
        ids = list(dict.fromkeys(user_ids))
        found: dict[str, set[str]] = {user_id: set() for user_id in ids}
        member = current_state_events
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(member.c.room_id, member.c.state_key).where(
                    member.c.state_key.in_(ids[start : start + _CHUNK]),
                    member.c.type == "m.room.member",
                    member.c.membership == "join",
                )
                for row in await conn.execute(query):
                    found[row.state_key].add(row.room_id)
        return found

    async def local_aliases(self, room_ids: Collection[str]) -> dict[str, list[str]]:
        """room_id -> the local aliases pointing at it, for those that have any."""
        ids = list(dict.fromkeys(room_ids))
        found: dict[str, list[str]] = {}
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(room_aliases.c.room_id, room_aliases.c.room_alias).where(
                    room_aliases.c.room_id.in_(ids[start : start + _CHUNK])
                )
                for row in await conn.execute(query):
                    found.setdefault(row.room_id, []).append(row.room_alias)
        return found

    async def canonical_alias_events(self, room_ids: Collection[str]) -> dict[str, str]:
        """room_id -> the ID of its current m.room.canonical_alias event, where it has one."""
        ids = list(dict.fromkeys(room_ids))
        found: dict[str, str] = {}
        state = current_state_events
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(state.c.room_id, state.c.event_id).where(
                    state.c.room_id.in_(ids[start : start + _CHUNK]),
                    state.c.type == "m.room.canonical_alias",
                    state.c.state_key == "",
                )
                for row in await conn.execute(query):
                    found[row.room_id] = row.event_id
        return found

    async def receipts_between(self, after: int, up_to: int) -> list[Receipt]:
        """Receipts of every room with a position in (after, up_to], oldest first: one
        per room, type, user and thread at most, so the range is bounded."""
        query = (
            select(receipts)
            .where(receipts.c.stream_id > after, receipts.c.stream_id <= up_to)
            .order_by(receipts.c.stream_id)
        )
        async with self._db.read() as conn:
            return [
                Receipt(
                    room_id=row.room_id,
                    receipt_type=row.receipt_type,
                    user_id=row.user_id,
                    thread_id=row.thread_id or None,
                    event_id=row.event_id,
                    ts=int(row.ts),
                )
                for row in await conn.execute(query)
            ]

    async def presence_between(self, after: int, up_to: int) -> list[PresenceState]:
        """Each user's presence whose position is in (after, up_to]."""
        query = select(presence).where(presence.c.stream_id > after, presence.c.stream_id <= up_to)
        async with self._db.read() as conn:
            return [
                PresenceState(
                    user_id=row.user_id,
                    state=row.state,
                    status_msg=row.status_msg,
                    last_active_ts=int(row.last_active_ts),
                    last_user_sync_ts=int(row.last_user_sync_ts),
                    currently_active=bool(row.currently_active),
                )
                for row in await conn.execute(query)
            ]

    async def inbox_between(
        self, user_ids: Collection[str], after: int, up_to: int, limit: int | None = None
    ) -> list[InboxMessage]:
        """To-device messages for `user_ids`' devices in (after, up_to], oldest first; the
        first `limit` of them (None: all)."""
        ids = list(dict.fromkeys(user_ids))
        found: list[InboxMessage] = []
        async with self._db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = (
                    select(device_inbox)
                    .where(
                        device_inbox.c.user_id.in_(ids[start : start + _CHUNK]),
                        device_inbox.c.stream_id > after,
                        device_inbox.c.stream_id <= up_to,
                    )
                    .order_by(device_inbox.c.stream_id)
                )
                if limit is not None:
                    query = query.limit(limit)
                found.extend(
                    InboxMessage(
                        row.user_id, row.device_id, int(row.stream_id), orjson.loads(row.message)
                    )
                    for row in await conn.execute(query)
                )
        found.sort(key=lambda message: message.stream_id)
        return found if limit is None else found[:limit]

    async def inbox_recipients(self, after: int, up_to: int) -> set[str]:
        """The users with to-device messages in (after, up_to]."""
        query = (
            select(device_inbox.c.user_id)
            .where(device_inbox.c.stream_id > after, device_inbox.c.stream_id <= up_to)
            .distinct()
        )
        async with self._db.read() as conn:
            return set((await conn.execute(query)).scalars())

    async def device_list_changes(self, after: int, up_to: int) -> set[str]:
        """The users whose devices changed in (after, up_to]."""
        query = (
            select(device_lists_stream.c.user_id)
            .where(
                device_lists_stream.c.stream_id > after, device_lists_stream.c.stream_id <= up_to
            )
            .distinct()
        )
        async with self._db.read() as conn:
            return set((await conn.execute(query)).scalars())


# -- what `ranvier appservices` shows (services/appservice/commands.py) --


@dataclass(frozen=True)
class AppServiceBacklog:
    """How far behind one service is, as the database says."""

    events_position: int | None
    unacknowledged_txns: int
    oldest_unacknowledged_ts: int | None


async def get_backlogs(db: Database) -> tuple[dict[str, AppServiceBacklog], int]:
    """Every service the database knows, with its backlog; and the newest event position."""
    found: dict[str, AppServiceBacklog] = {}
    async with db.read() as conn:
        newest = int((await conn.execute(select(func.max(events.c.stream_ordering)))).scalar() or 0)
        positions = {
            row.appservice_id: int(row.events_position)
            for row in await conn.execute(
                select(appservice_state.c.appservice_id, appservice_state.c.events_position)
            )
        }
        pending = {
            row.appservice_id: (int(row.txns), int(row.oldest))
            for row in await conn.execute(
                select(
                    appservice_txns.c.appservice_id,
                    func.count().label("txns"),
                    func.min(appservice_txns.c.created_ts).label("oldest"),
                ).group_by(appservice_txns.c.appservice_id)
            )
        }
    for appservice_id in set(positions) | set(pending):
        count, oldest = pending.get(appservice_id, (0, None))
        found[appservice_id] = AppServiceBacklog(positions.get(appservice_id), count, oldest)
    return found, newest
