"""Room state: shared snapshots stored as deltas (state groups), the state after each event,
and each room's current state.

A state group is either a full snapshot (`prev_group` NULL) or a delta against
`prev_group`; a delta entry with a NULL event_id removes the key. Loading walks the chain in
one recursive query; `chain_length` lets writers start a fresh snapshot before chains grow
long.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

state_groups = Table(
    "state_groups",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("room_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("prev_group", BigInteger, nullable=True),
    Column("chain_length", Integer, nullable=False, server_default="0"),
)

state_group_state = Table(
    "state_group_state",
    metadata,
    Column("state_group", BigInteger, primary_key=True),
    Column("type", Text, primary_key=True),
    Column("state_key", Text, primary_key=True),
    Column("event_id", Text, nullable=True),
)

event_to_state_groups = Table(
    "event_to_state_groups",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("state_group", BigInteger, nullable=False),
)

current_state_events = Table(
    "current_state_events",
    metadata,
    Column("room_id", Text, primary_key=True),
    Column("type", Text, primary_key=True),
    Column("state_key", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("membership", Text, nullable=True),
    Index("ix_current_state_events_member", "state_key", "type"),
)


async def insert_state_group(
    conn: AsyncConnection,
    group_id: int,
    room_id: str,
    event_id: str,
    prev_group: int | None,
    chain_length: int,
    entries: Mapping[StateKey, str | None],
) -> None:
    await conn.execute(
        insert(state_groups).values(
            id=group_id,
            room_id=room_id,
            event_id=event_id,
            prev_group=prev_group,
            chain_length=chain_length,
        )
    )
    if entries:
        await conn.execute(
            insert(state_group_state),
            [
                {"state_group": group_id, "type": key[0], "state_key": key[1], "event_id": value}
                for key, value in entries.items()
            ],
        )


async def set_event_state_groups(conn: AsyncConnection, groups: Mapping[str, int]) -> None:
    if groups:
        await conn.execute(
            insert(event_to_state_groups),
            [{"event_id": event_id, "state_group": group} for event_id, group in groups.items()],
        )


async def get_event_state_groups(db: Database, event_ids: Iterable[str]) -> dict[str, int]:
    ids = list(event_ids)
    if not ids:
        return {}
    query = select(event_to_state_groups).where(event_to_state_groups.c.event_id.in_(ids))
    async with db.read() as conn:
        return {row.event_id: row.state_group for row in await conn.execute(query)}


async def get_state_group_chain_length(db: Database, group_id: int) -> int:
    query = select(state_groups.c.chain_length).where(state_groups.c.id == group_id)
    async with db.read() as conn:
        value = (await conn.execute(query)).scalar()
    return int(value or 0)


async def get_state_group_state(db: Database, group_id: int) -> StateMap:
    """The full state of one group, walking its delta chain in a single query."""
    chain = (
        select(state_groups.c.id, state_groups.c.prev_group, literal(0).label("hops"))
        .where(state_groups.c.id == group_id)
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(state_groups.c.id, state_groups.c.prev_group, chain.c.hops + 1).where(
            state_groups.c.id == chain.c.prev_group
        )
    )
    query = (
        select(
            chain.c.hops,
            state_group_state.c.type,
            state_group_state.c.state_key,
            state_group_state.c.event_id,
        )
        .select_from(chain.join(state_group_state, state_group_state.c.state_group == chain.c.id))
        .order_by(chain.c.hops.desc())
    )
    state: StateMap = {}
    async with db.read() as conn:
        for row in await conn.execute(query):
            key = (row.type, row.state_key)
            if row.event_id is None:
                state.pop(key, None)
            else:
                state[key] = row.event_id
    return state


async def get_state_group_states(db: Database, group_ids: Iterable[int]) -> dict[int, StateMap]:
    """The full state of many groups in one query per chunk: each group's delta chain is
    walked with the group it started from carried along."""
    ids = list(dict.fromkeys(group_ids))
    found: dict[int, StateMap] = {}
    async with db.read() as conn:
        for start in range(0, len(ids), 500):
            chain = (
                select(
                    state_groups.c.id.label("root"),
                    state_groups.c.id,
                    state_groups.c.prev_group,
                    literal(0).label("hops"),
                )
                .where(state_groups.c.id.in_(ids[start : start + 500]))
                .cte("chains", recursive=True)
            )
            chain = chain.union_all(
                select(
                    chain.c.root, state_groups.c.id, state_groups.c.prev_group, chain.c.hops + 1
                ).where(state_groups.c.id == chain.c.prev_group)
            )
            query = (
                select(
                    chain.c.root,
                    chain.c.hops,
                    state_group_state.c.type,
                    state_group_state.c.state_key,
                    state_group_state.c.event_id,
                )
                .select_from(
                    chain.join(state_group_state, state_group_state.c.state_group == chain.c.id)
                )
                .order_by(chain.c.root, chain.c.hops.desc())
            )
            for group_id in ids[start : start + 500]:
                found[group_id] = {}
            for row in await conn.execute(query):
                state = found[row.root]
                key = (row.type, row.state_key)
                if row.event_id is None:
                    state.pop(key, None)
                else:
                    state[key] = row.event_id
    return found


async def max_state_group_id(db: Database) -> int:
    async with db.read() as conn:
        value = (await conn.execute(select(func.max(state_groups.c.id)))).scalar()
    return int(value or 0)


async def apply_current_state_delta(
    conn: AsyncConnection,
    room_id: str,
    changes: Mapping[StateKey, tuple[str, str | None] | None],
) -> None:
    """`changes` maps a key to (event_id, membership), or None to drop the key."""
    if not changes:
        return
    keys = list(changes)
    await conn.execute(
        delete(current_state_events).where(
            and_(
                current_state_events.c.room_id == room_id,
                tuple_(current_state_events.c.type, current_state_events.c.state_key).in_(keys),
            )
        )
    )
    rows = [
        {
            "room_id": room_id,
            "type": key[0],
            "state_key": key[1],
            "event_id": value[0],
            "membership": value[1],
        }
        for key, value in changes.items()
        if value is not None
    ]
    if rows:
        await conn.execute(insert(current_state_events), rows)


async def get_current_state_ids(db: Database, room_id: str) -> StateMap:
    query = select(
        current_state_events.c.type,
        current_state_events.c.state_key,
        current_state_events.c.event_id,
    ).where(current_state_events.c.room_id == room_id)
    async with db.read() as conn:
        return {(row.type, row.state_key): row.event_id for row in await conn.execute(query)}


async def get_rooms_for_user(
    db: Database, user_id: str, memberships: Iterable[str] = ("join",)
) -> dict[str, str]:
    """room_id -> membership for the user's current membership in each room."""
    query = select(current_state_events.c.room_id, current_state_events.c.membership).where(
        current_state_events.c.type == "m.room.member",
        current_state_events.c.state_key == user_id,
        current_state_events.c.membership.in_(list(memberships)),
    )
    async with db.read() as conn:
        return {row.room_id: row.membership for row in await conn.execute(query)}


async def get_members(
    db: Database, room_id: str, memberships: Iterable[str] = ("join",)
) -> dict[str, str]:
    """user_id -> membership for current members of the room in the given memberships."""
    query = select(current_state_events.c.state_key, current_state_events.c.membership).where(
        current_state_events.c.room_id == room_id,
        current_state_events.c.type == "m.room.member",
        current_state_events.c.membership.in_(list(memberships)),
    )
    async with db.read() as conn:
        return {row.state_key: row.membership for row in await conn.execute(query)}


async def get_current_state_ids_for_rooms(
    db: Database, room_ids: Iterable[str], event_types: Iterable[str]
) -> dict[str, dict[str, str]]:
    """room_id -> event type -> event_id of the current state with an empty state key, for
    the given types (the room-wide state a room list shows)."""
    ids = list(dict.fromkeys(room_ids))
    types = list(event_types)
    found: dict[str, dict[str, str]] = {room_id: {} for room_id in ids}
    async with db.read() as conn:
        # chunks keep the IN list well inside every engine's parameter limit
        for start in range(0, len(ids), 500):
            query = select(
                current_state_events.c.room_id,
                current_state_events.c.type,
                current_state_events.c.event_id,
            ).where(
                current_state_events.c.room_id.in_(ids[start : start + 500]),
                current_state_events.c.type.in_(types),
                current_state_events.c.state_key == "",
            )
            for row in await conn.execute(query):
                found[row.room_id][row.type] = row.event_id
    return found


async def users_share_room(db: Database, user_a: str, user_b: str) -> bool:
    """Whether both users are currently joined to at least one common room."""
    a = current_state_events.alias("a")
    b = current_state_events.alias("b")
    query = (
        select(a.c.room_id)
        .select_from(a.join(b, a.c.room_id == b.c.room_id))
        .where(
            a.c.type == "m.room.member",
            a.c.state_key == user_a,
            a.c.membership == "join",
            b.c.type == "m.room.member",
            b.c.state_key == user_b,
            b.c.membership == "join",
        )
        .limit(1)
    )
    async with db.read() as conn:
        return (await conn.execute(query)).first() is not None


async def server_has_joined_member(db: Database, room_id: str, server_name: str) -> bool:
    """Whether a user of `server_name` is joined to the room now."""
    query = select(current_state_events.c.state_key).where(
        current_state_events.c.room_id == room_id,
        current_state_events.c.type == "m.room.member",
        current_state_events.c.membership == "join",
        current_state_events.c.state_key.endswith(":" + server_name, autoescape=True),
    )
    async with db.read() as conn:
        # the suffix narrows; the server name is all after the first colon
        return any(
            row.state_key.partition(":")[2] == server_name for row in await conn.execute(query)
        )


async def get_state_group_origin(db: Database, group_id: int) -> tuple[str, int | None] | None:
    """(the event the group was made for, the group it is a delta against), if it exists."""
    query = select(state_groups.c.event_id, state_groups.c.prev_group).where(
        state_groups.c.id == group_id
    )
    async with db.read() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else (row.event_id, row.prev_group)
