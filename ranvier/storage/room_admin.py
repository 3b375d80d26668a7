"""The room admin API's tables and queries: blocked rooms, Delete Room requests, the admin's
views over rooms (list, details), and the purge that removes a room from every table.

The views read the room tables owned by their stores (rooms, events, current state, aliases)
and pull the few fields they show out of the state events' JSON, so they can never disagree
with the room itself and need no statistics table kept in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Index,
    Select,
    Table,
    Text,
    case,
    cast,
    column,
    delete,
    false,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    table,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import TableClause

from ranvier.clock import now_ms
from ranvier.storage.aliases import room_aliases
from ranvier.storage.database import Database
from ranvier.storage.devices import devices
from ranvier.storage.events import events
from ranvier.storage.memberships import room_memberships
from ranvier.storage.metadata import metadata
from ranvier.storage.rooms import rooms
from ranvier.storage.state import current_state_events, state_group_state, state_groups

blocked_rooms = Table(
    "blocked_rooms",
    metadata,
    Column("room_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("blocked_ts", BigInteger, nullable=False),
)

room_deletions = Table(
    "room_deletions",
    metadata,
    Column("delete_id", Text, primary_key=True),
    Column("room_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("requester", Text, nullable=False),
    Column("kicked_users", Text, nullable=False, server_default="[]"),
    Column("failed_to_kick_users", Text, nullable=False, server_default="[]"),
    Column("local_aliases", Text, nullable=False, server_default="[]"),
    Column("new_room_id", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_ts", BigInteger, nullable=False),
    Column("finished_ts", BigInteger, nullable=True),
    Index("ix_room_deletions_room_id", "room_id"),
)

# Tables a purge leaves alone although they name the room: the block must outlive the room,
# the deletion's status must be readable afterwards, and reports are the admins' evidence
# of why the room was deleted.
KEPT_ON_PURGE = frozenset({"blocked_rooms", "room_deletions", "event_reports", "room_reports"})

RoomOrderBy = Literal[
    "name",
    "canonical_alias",
    "joined_members",
    "joined_local_members",
    "version",
    "creator",
    "encryption",
    "federatable",
    "public",
    "join_rules",
    "guest_access",
    "history_visibility",
    "state_events",
]
ROOM_ORDER_BY_VALUES: tuple[str, ...] = RoomOrderBy.__args__  # type: ignore[attr-defined]
# Synapse's spec: these sort largest first when going forwards
_LARGEST_FIRST = frozenset({"joined_members", "joined_local_members", "version", "state_events"})


@dataclass(frozen=True)
class RoomListQuery:
    start: int = 0
    limit: int = 100
    order_by: RoomOrderBy = "name"
    backwards: bool = False
    search_term: str | None = None
    # None: both; True: only rooms in the directory; False: only rooms not in it
    public_rooms: bool | None = None
    # None: both; True: only rooms nobody is joined to; False: only rooms somebody is
    empty_rooms: bool | None = None


@dataclass(frozen=True)
class RoomAdminView:
    room_id: str
    name: str | None
    canonical_alias: str | None
    joined_members: int
    joined_local_members: int
    version: str
    creator: str
    encryption: str | None
    federatable: bool
    public: bool
    join_rules: str | None
    guest_access: str | None
    history_visibility: str | None
    state_events: int
    room_type: str | None


@dataclass(frozen=True)
class RoomDetailsView:
    room: RoomAdminView
    topic: str | None
    avatar: str | None
    joined_local_devices: int
    forgotten: bool


@dataclass(frozen=True)
class RoomDeletionRecord:
    delete_id: str
    room_id: str
    status: str
    kicked_users: list[str]
    failed_to_kick_users: list[str]
    local_aliases: list[str]
    new_room_id: str | None
    error: str | None
    started_ts: int
    finished_ts: int | None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(value: Any) -> str | None:
    # state content is whatever a client sent; only strings are shown as strings
    return value if isinstance(value, str) else None


class RoomAdminStore:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name
        # every join asks; blocks are few and change only through this store
        self._blocked_room_ids: set[str] | None = None

    # -- the engine difference, in one place -----------------------------------------------

    def _content_field(self, key: str) -> ColumnElement[Any]:
        """A top-level field of the content of the `events` row in scope."""
        if self._db.dialect == "postgresql":
            field: ColumnElement[Any] = cast(events.c.json, JSONB)["content"][key].astext
            return field
        return func.json_extract(events.c.json, f'$.content."{key}"')

    def _content_field_is_false(self, key: str) -> ColumnElement[bool]:
        if self._db.dialect == "postgresql":
            return cast(events.c.json, JSONB)["content"][key] == cast(literal("false"), JSONB)
        return func.json_type(events.c.json, f'$.content."{key}"') == "false"

    def _contains_case_sensitive(self, column: Any, term: str) -> ColumnElement[bool]:
        # LIKE ignores ASCII case on SQLite; a room ID is matched exactly as typed
        if self._db.dialect == "postgresql":
            return func.strpos(column, term) > 0
        return func.instr(column, term) > 0

    # -- views -----------------------------------------------------------------------------

    def _state_value(self, event_type: str, value: ColumnElement[Any], label: str) -> Any:
        return (
            select(value)
            .select_from(
                current_state_events.join(
                    events, events.c.event_id == current_state_events.c.event_id
                )
            )
            .where(
                current_state_events.c.room_id == rooms.c.room_id,
                current_state_events.c.type == event_type,
                current_state_events.c.state_key == "",
            )
            .scalar_subquery()
            .label(label)
        )

    def _select_rooms(self, *, with_details: bool = False) -> Select[Any]:
        local = f"%:{_escape_like(self._server_name)}"
        member = current_state_events.c
        members = (
            select(
                member.room_id,
                func.count().label("joined"),
                func.sum(case((member.state_key.like(local, escape="\\"), 1), else_=0)).label(
                    "joined_local"
                ),
            )
            .where(member.type == "m.room.member", member.membership == "join")
            .group_by(member.room_id)
            .subquery("members")
        )
        state_counts = (
            select(member.room_id, func.count().label("state_events"))
            .group_by(member.room_id)
            .subquery("state_counts")
        )
        columns: list[Any] = [
            rooms.c.room_id,
            self._state_value("m.room.name", self._content_field("name"), "name"),
            self._state_value(
                "m.room.canonical_alias", self._content_field("alias"), "canonical_alias"
            ),
            func.coalesce(members.c.joined, 0).label("joined_members"),
            func.coalesce(members.c.joined_local, 0).label("joined_local_members"),
            rooms.c.room_version.label("version"),
            rooms.c.creator,
            self._state_value("m.room.encryption", self._content_field("algorithm"), "encryption"),
            self._state_value(
                "m.room.create",
                case((self._content_field_is_false("m.federate"), false()), else_=true()),
                "federatable",
            ),
            rooms.c.is_public.label("public"),
            self._state_value("m.room.join_rules", self._content_field("join_rule"), "join_rules"),
            self._state_value(
                "m.room.guest_access", self._content_field("guest_access"), "guest_access"
            ),
            self._state_value(
                "m.room.history_visibility",
                self._content_field("history_visibility"),
                "history_visibility",
            ),
            func.coalesce(state_counts.c.state_events, 0).label("state_events"),
            self._state_value("m.room.create", self._content_field("type"), "room_type"),
        ]
        if with_details:
            columns += [
                self._state_value("m.room.topic", self._content_field("topic"), "topic"),
                self._state_value("m.room.avatar", self._content_field("url"), "avatar"),
            ]
        return (
            select(*columns)
            .select_from(rooms)
            .outerjoin(members, members.c.room_id == rooms.c.room_id)
            .outerjoin(state_counts, state_counts.c.room_id == rooms.c.room_id)
        )

    @staticmethod
    def _view(row: Any) -> RoomAdminView:
        return RoomAdminView(
            room_id=row.room_id,
            name=_text(row.name),
            canonical_alias=_text(row.canonical_alias),
            joined_members=int(row.joined_members),
            joined_local_members=int(row.joined_local_members),
            version=row.version,
            creator=row.creator,
            encryption=_text(row.encryption),
            # a room without a readable create event would not be listed as unfederatable
            federatable=row.federatable is None or bool(row.federatable),
            public=bool(row.public),
            join_rules=_text(row.join_rules),
            guest_access=_text(row.guest_access),
            history_visibility=_text(row.history_visibility),
            state_events=int(row.state_events),
            room_type=_text(row.room_type),
        )

    async def list_rooms(self, query: RoomListQuery) -> tuple[list[RoomAdminView], int]:
        """One page of rooms and how many match in all."""
        base = self._select_rooms().subquery("room_list")
        conditions: list[ColumnElement[bool]] = []
        if query.search_term:
            pattern = f"%{_escape_like(query.search_term.lower())}%"
            conditions.append(
                or_(
                    func.lower(base.c.name).like(pattern, escape="\\"),
                    # the canonical alias's localpart, between "#" and the first ":"
                    func.lower(base.c.canonical_alias).like(f"#{pattern}:%", escape="\\"),
                    self._contains_case_sensitive(base.c.room_id, query.search_term),
                )
            )
        if query.public_rooms is not None:
            conditions.append(base.c.public.is_(query.public_rooms))
        if query.empty_rooms is True:
            conditions.append(base.c.joined_members == 0)
        elif query.empty_rooms is False:
            conditions.append(base.c.joined_members > 0)
        matching = select(base).where(*conditions).subquery("matching")
        column = matching.c[query.order_by]
        descending = (query.order_by in _LARGEST_FIRST) != query.backwards
        # NULLs sort as the smallest value on both engines, so pages are identical
        nulls = column.is_not(None) if not descending else column.is_(None)
        page = (
            select(matching)
            .order_by(
                nulls,
                column.desc() if descending else column.asc(),
                matching.c.room_id.desc() if query.backwards else matching.c.room_id.asc(),
            )
            .limit(query.limit)
            .offset(query.start)
        )
        async with self._db.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(matching))).scalar_one()
            rows = (await conn.execute(page)).all()
        return [self._view(row) for row in rows], int(total)

    async def get_room_details(self, room_id: str) -> RoomDetailsView | None:
        query = self._select_rooms(with_details=True).where(rooms.c.room_id == room_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            local_joined = self._local_members(room_id, ("join",))
            device_count = (
                await conn.execute(
                    select(func.count())
                    .select_from(devices)
                    .where(devices.c.user_id.in_(local_joined.scalar_subquery()))
                )
            ).scalar_one()
            # spec "Leaving rooms": forgotten by everyone here means no local member's
            # current membership is still unforgotten
            unforgotten = (
                await conn.execute(
                    select(room_memberships.c.event_id)
                    .select_from(
                        current_state_events.join(
                            room_memberships,
                            room_memberships.c.event_id == current_state_events.c.event_id,
                        )
                    )
                    .where(
                        current_state_events.c.room_id == room_id,
                        current_state_events.c.type == "m.room.member",
                        current_state_events.c.state_key.like(
                            f"%:{_escape_like(self._server_name)}", escape="\\"
                        ),
                        room_memberships.c.forgotten.is_(False),
                    )
                    .limit(1)
                )
            ).first()
        return RoomDetailsView(
            room=self._view(row),
            topic=_text(row.topic),
            avatar=_text(row.avatar),
            joined_local_devices=int(device_count),
            forgotten=unforgotten is None,
        )

    def _local_members(self, room_id: str, memberships: Sequence[str]) -> Select[Any]:
        return select(current_state_events.c.state_key).where(
            current_state_events.c.room_id == room_id,
            current_state_events.c.type == "m.room.member",
            current_state_events.c.membership.in_(list(memberships)),
            current_state_events.c.state_key.like(
                f"%:{_escape_like(self._server_name)}", escape="\\"
            ),
        )

    async def get_local_members(self, room_id: str, memberships: Sequence[str]) -> list[str]:
        """Local users whose current membership of the room is one of `memberships`."""
        query = self._local_members(room_id, memberships).order_by(current_state_events.c.state_key)
        async with self._db.read() as conn:
            return [str(value) for value in (await conn.execute(query)).scalars()]

    # -- blocked rooms ---------------------------------------------------------------------

    async def get_blocker(self, room_id: str) -> str | None:
        """The admin who blocked the room, or None if it is not blocked."""
        query = select(blocked_rooms.c.user_id).where(blocked_rooms.c.room_id == room_id)
        async with self._db.read() as conn:
            value = (await conn.execute(query)).scalar()
        return None if value is None else str(value)

    async def is_blocked(self, room_id: str) -> bool:
        if self._blocked_room_ids is None:
            async with self._db.read() as conn:
                rows = await conn.execute(select(blocked_rooms.c.room_id))
                self._blocked_room_ids = {str(row.room_id) for row in rows}
        return room_id in self._blocked_room_ids

    async def block(self, room_id: str, user_id: str) -> None:
        """Block the room; a room already blocked keeps who blocked it first."""
        async with self._db.transaction() as conn:
            exists = (
                await conn.execute(
                    select(blocked_rooms.c.room_id).where(blocked_rooms.c.room_id == room_id)
                )
            ).first()
            if exists is None:
                await conn.execute(
                    insert(blocked_rooms).values(
                        room_id=room_id, user_id=user_id, blocked_ts=now_ms()
                    )
                )
        if self._blocked_room_ids is not None:
            self._blocked_room_ids.add(room_id)

    async def unblock(self, room_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(delete(blocked_rooms).where(blocked_rooms.c.room_id == room_id))
        if self._blocked_room_ids is not None:
            self._blocked_room_ids.discard(room_id)

    # -- aliases during a shutdown ---------------------------------------------------------

    async def get_aliases(self, room_id: str) -> list[str]:
        query = (
            select(room_aliases.c.room_alias)
            .where(room_aliases.c.room_id == room_id)
            .order_by(room_aliases.c.room_alias)
        )
        async with self._db.read() as conn:
            return [str(value) for value in (await conn.execute(query)).scalars()]

    async def move_aliases(self, room_id: str, new_room_id: str | None, creator: str) -> None:
        """Point the room's aliases at `new_room_id`, or delete them if it is None; and take
        the room out of the public directory."""
        async with self._db.transaction() as conn:
            if new_room_id is None:
                await conn.execute(delete(room_aliases).where(room_aliases.c.room_id == room_id))
            else:
                await conn.execute(
                    update(room_aliases)
                    .where(room_aliases.c.room_id == room_id)
                    .values(room_id=new_room_id, creator=creator, created_ts=now_ms())
                )
            await conn.execute(
                update(rooms).where(rooms.c.room_id == room_id).values(is_public=False)
            )

    # -- deletions -------------------------------------------------------------------------

    async def insert_deletion(
        self, delete_id: str, room_id: str, requester: str, status: str
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(room_deletions).values(
                    delete_id=delete_id,
                    room_id=room_id,
                    status=status,
                    requester=requester,
                    started_ts=now_ms(),
                )
            )

    async def update_deletion(
        self,
        delete_id: str,
        *,
        status: str | None = None,
        kicked_users: Sequence[str] | None = None,
        failed_to_kick_users: Sequence[str] | None = None,
        local_aliases: Sequence[str] | None = None,
        new_room_id: str | None = None,
        error: str | None = None,
        finished: bool = False,
    ) -> None:
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        for key, items in (
            ("kicked_users", kicked_users),
            ("failed_to_kick_users", failed_to_kick_users),
            ("local_aliases", local_aliases),
        ):
            if items is not None:
                values[key] = orjson.dumps(list(items)).decode()
        if new_room_id is not None:
            values["new_room_id"] = new_room_id
        if error is not None:
            values["error"] = error
        if finished:
            values["finished_ts"] = now_ms()
        async with self._db.transaction() as conn:
            await conn.execute(
                update(room_deletions)
                .where(room_deletions.c.delete_id == delete_id)
                .values(**values)
            )

    async def fail_unfinished_deletions(self, unfinished: Sequence[str], error: str) -> int:
        """Mark deletions a stopped process left in one of `unfinished` statuses as failed."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(room_deletions)
                .where(room_deletions.c.status.in_(list(unfinished)))
                .values(status="failed", error=error, finished_ts=now_ms())
            )
        return int(result.rowcount or 0)

    @staticmethod
    def _deletion(row: Any) -> RoomDeletionRecord:
        return RoomDeletionRecord(
            delete_id=row.delete_id,
            room_id=row.room_id,
            status=row.status,
            kicked_users=orjson.loads(row.kicked_users),
            failed_to_kick_users=orjson.loads(row.failed_to_kick_users),
            local_aliases=orjson.loads(row.local_aliases),
            new_room_id=row.new_room_id,
            error=row.error,
            started_ts=row.started_ts,
            finished_ts=row.finished_ts,
        )

    async def get_deletion(self, delete_id: str) -> RoomDeletionRecord | None:
        query = select(room_deletions).where(room_deletions.c.delete_id == delete_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else self._deletion(row)

    async def get_deletions_for_room(
        self, room_id: str, finished_since_ts: int
    ) -> list[RoomDeletionRecord]:
        """The room's deletions still running or finished at `finished_since_ts` or later."""
        query = (
            select(room_deletions)
            .where(
                room_deletions.c.room_id == room_id,
                or_(
                    room_deletions.c.finished_ts.is_(None),
                    room_deletions.c.finished_ts >= finished_since_ts,
                ),
            )
            .order_by(room_deletions.c.started_ts, room_deletions.c.delete_id)
        )
        async with self._db.read() as conn:
            return [self._deletion(row) for row in await conn.execute(query)]

    # -- purge -----------------------------------------------------------------------------

    async def count_local_joined(self, room_id: str) -> int:
        query = select(func.count()).select_from(self._local_members(room_id, ("join",)).subquery())
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def purge_room(self, room_id: str) -> None:
        """Delete every row about the room, in one transaction per group of tables.

        The tables are found in the database itself, not in a list kept here: every table
        with a `room_id` column is swept by room, and every table keyed by `event_id` alone
        through the room's events, so what later features add (full text indexes made in
        raw SQL included) is purged without a change here. The `rooms` row goes last: until
        then a failed purge can be started again and finds the room.
        """
        async with self._db.read() as conn:
            columns_by_table = await conn.run_sync(_columns_by_table)
        special = {rooms.name, events.name, state_groups.name, state_group_state.name}
        by_event: list[TableClause] = []
        by_room: list[TableClause] = []
        for name, columns in sorted(columns_by_table.items()):
            if name in KEPT_ON_PURGE or name in special:
                continue
            if "room_id" in columns:
                by_room.append(table(name, column("room_id")))
            elif "event_id" in columns:
                by_event.append(table(name, column("event_id")))
        room_events = select(events.c.event_id).where(events.c.room_id == room_id)
        async with self._db.transaction() as conn:
            for swept in by_event:
                await conn.execute(delete(swept).where(swept.c.event_id.in_(room_events)))
        async with self._db.transaction() as conn:
            groups = select(state_groups.c.id).where(state_groups.c.room_id == room_id)
            await conn.execute(
                delete(state_group_state).where(state_group_state.c.state_group.in_(groups))
            )
            await conn.execute(delete(state_groups).where(state_groups.c.room_id == room_id))
        async with self._db.transaction() as conn:
            for swept in by_room:
                await conn.execute(delete(swept).where(swept.c.room_id == room_id))
        async with self._db.transaction() as conn:
            await conn.execute(delete(events).where(events.c.room_id == room_id))
            await conn.execute(delete(rooms).where(rooms.c.room_id == room_id))

    async def room_exists(self, room_id: str) -> bool:
        query = select(rooms.c.room_id).where(rooms.c.room_id == room_id)
        async with self._db.read() as conn:
            return (await conn.execute(query)).first() is not None


def _columns_by_table(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {
        name: {str(info["name"]) for info in inspector.get_columns(name)}
        for name in inspector.get_table_names()
    }


__all__ = [
    "KEPT_ON_PURGE",
    "ROOM_ORDER_BY_VALUES",
    "RoomAdminStore",
    "RoomAdminView",
    "RoomDeletionRecord",
    "RoomDetailsView",
    "RoomListQuery",
]
