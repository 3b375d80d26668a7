"""Reads for /sync: a user's memberships as of a stream position, and the newest events of
many rooms in one query. Tables belong to their own stores (events, room_memberships,
state); this module only reads them the way sync needs."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, bindparam, false, func, select

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.memberships import room_memberships
from ranvier.storage.state import current_state_events

# IN lists are chunked to stay inside every engine's parameter limit
_CHUNK = 500


@dataclass(frozen=True)
class MembershipAt:
    """A user's latest membership in one room at some stream position."""

    room_id: str
    event_id: str
    membership: str
    stream: int
    forgotten: bool


@dataclass(frozen=True)
class UserMemberships:
    # room_id -> the latest membership at the upper position
    now: dict[str, MembershipAt]
    # room_id -> the latest membership at or before the lower position (rooms with one)
    before: dict[str, MembershipAt]
    # rooms the user joined (or rejoined) after the lower position
    joined_since: set[str] = field(default_factory=set)


async def get_memberships(db: Database, user_id: str, since: int, upto: int) -> UserMemberships:
    """The user's memberships at `since` and at `upto`, from one read of their history."""
    query = (
        select(
            room_memberships.c.room_id,
            room_memberships.c.event_id,
            room_memberships.c.membership,
            room_memberships.c.stream_ordering,
            room_memberships.c.forgotten,
        )
        .where(room_memberships.c.user_id == user_id, room_memberships.c.stream_ordering <= upto)
        .order_by(room_memberships.c.stream_ordering)
    )
    now: dict[str, MembershipAt] = {}
    before: dict[str, MembershipAt] = {}
    joined_since: set[str] = set()
    async with db.read() as conn:
        for row in await conn.execute(query):
            found = MembershipAt(
                row.room_id, row.event_id, row.membership, row.stream_ordering, bool(row.forgotten)
            )
            now[row.room_id] = found
            if row.stream_ordering <= since:
                before[row.room_id] = found
            elif row.membership == "join":
                joined_since.add(row.room_id)
    return UserMemberships(now, before, joined_since)


@dataclass(frozen=True)
class TimelineRow:
    event_id: str
    depth: int
    stream: int


def _recent_events_query() -> Select[tuple[str, str, int, int]]:
    numbered = (
        select(
            events.c.room_id,
            events.c.event_id,
            events.c.topological_ordering,
            events.c.stream_ordering,
            func.row_number()
            .over(partition_by=events.c.room_id, order_by=events.c.stream_ordering.desc())
            .label("n"),
        )
        .where(
            events.c.room_id.in_(bindparam("room_ids", expanding=True)),
            events.c.stream_ordering > bindparam("after"),
            events.c.stream_ordering <= bindparam("upto"),
            events.c.outlier == false(),
            events.c.rejected_reason.is_(None),
            events.c.soft_failed == false(),
        )
        .subquery()
    )
    return (
        select(
            numbered.c.room_id,
            numbered.c.event_id,
            numbered.c.topological_ordering,
            numbered.c.stream_ordering,
        )
        .where(numbered.c.n <= bindparam("limit"))
        .order_by(numbered.c.stream_ordering)
    )


def _last_events_query() -> Select[tuple[str, str]]:
    last = (
        select(events.c.room_id, func.max(events.c.stream_ordering).label("stream"))
        .where(
            events.c.room_id.in_(bindparam("room_ids", expanding=True)),
            events.c.stream_ordering <= bindparam("upto"),
            events.c.outlier == false(),
            events.c.rejected_reason.is_(None),
            events.c.soft_failed == false(),
        )
        .group_by(events.c.room_id)
        .subquery()
    )
    return select(events.c.room_id, events.c.event_id).select_from(
        events.join(last, events.c.stream_ordering == last.c.stream)
    )


# built once: every incremental sync runs them, and building a statement with a subquery
# costs more than running it
_RECENT_EVENTS = _recent_events_query()
_LAST_EVENTS = _last_events_query()


async def get_recent_events(
    db: Database, room_ids: Iterable[str], after: int, upto: int, limit: int
) -> dict[str, list[TimelineRow]]:
    """room_id -> up to `limit` of its newest timeline events with a stream position in
    (after, upto], oldest first. Rooms with none are absent. One query per chunk of rooms:
    a window function numbers each room's events from the newest."""
    ids = list(dict.fromkeys(room_ids))
    found: dict[str, list[TimelineRow]] = {}
    if not ids or limit <= 0:
        return found
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            params = {
                "room_ids": ids[start : start + _CHUNK],
                "after": after,
                "upto": upto,
                "limit": limit,
            }
            for row in await conn.execute(_RECENT_EVENTS, params):
                found.setdefault(row.room_id, []).append(
                    TimelineRow(row.event_id, row.topological_ordering, row.stream_ordering)
                )
    return found


async def get_last_events_at(db: Database, room_ids: Iterable[str], upto: int) -> dict[str, str]:
    """room_id -> its last timeline event with a stream position at or below `upto`."""
    ids = list(dict.fromkeys(room_ids))
    found: dict[str, str] = {}
    if not ids:
        return found
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            params = {"room_ids": ids[start : start + _CHUNK], "upto": upto}
            for row in await conn.execute(_LAST_EVENTS, params):
                found[row.room_id] = row.event_id
    return found


@dataclass(frozen=True)
class RoomMemberSummary:
    joined: int
    invited: int
    # up to `heroes` other members, joined or invited (else departed), by user ID
    heroes: list[str]


def _member_counts_query() -> Select[tuple[str, str, int]]:
    members = current_state_events
    return (
        select(members.c.room_id, members.c.membership, func.count().label("n"))
        .where(
            members.c.room_id.in_(bindparam("room_ids", expanding=True)),
            members.c.type == "m.room.member",
        )
        .group_by(members.c.room_id, members.c.membership)
    )


def _heroes_query() -> Select[tuple[str, str]]:
    members = current_state_events
    numbered = (
        select(
            members.c.room_id,
            members.c.state_key,
            func.row_number()
            .over(partition_by=members.c.room_id, order_by=members.c.state_key)
            .label("n"),
        )
        .where(
            members.c.room_id.in_(bindparam("room_ids", expanding=True)),
            members.c.type == "m.room.member",
            members.c.membership.in_(bindparam("memberships", expanding=True)),
            members.c.state_key != bindparam("user_id"),
        )
        .subquery()
    )
    return (
        select(numbered.c.room_id, numbered.c.state_key)
        .where(numbered.c.n <= bindparam("heroes"))
        .order_by(numbered.c.room_id, numbered.c.state_key)
    )


# built once, as the timeline queries: every sync that shows a room runs them
_MEMBER_COUNTS = _member_counts_query()
_HEROES = _heroes_query()


async def get_member_summaries(
    db: Database,
    room_ids: Iterable[str],
    user_id: str,
    heroes: int,
    hero_rooms: Collection[str] | None = None,
) -> dict[str, RoomMemberSummary]:
    """room_id -> member counts and heroes from the rooms' current state, without loading
    every member of a large room. With `hero_rooms`, only those rooms get heroes (a named
    room shows none)."""
    ids = list(dict.fromkeys(room_ids))
    counts: dict[str, dict[str, int]] = {room_id: {} for room_id in ids}
    room_to_heroes: dict[str, list[str]] = {room_id: [] for room_id in ids}
    async with db.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for row in await conn.execute(_MEMBER_COUNTS, {"room_ids": chunk}):
                counts[row.room_id][row.membership] = row.n
            for memberships in (["join", "invite"], ["leave", "ban"]):
                # spec: when nobody else is joined or invited, those who left stand in
                rooms = [
                    r
                    for r in chunk
                    if not room_to_heroes[r] and (hero_rooms is None or r in hero_rooms)
                ]
                if not rooms:
                    continue
                params = {
                    "room_ids": rooms,
                    "memberships": memberships,
                    "user_id": user_id,
                    "heroes": heroes,
                }
                for hero in await conn.execute(_HEROES, params):
                    room_to_heroes[hero.room_id].append(hero.state_key)
    return {
        room_id: RoomMemberSummary(
            counts[room_id].get("join", 0),
            counts[room_id].get("invite", 0),
            room_to_heroes[room_id],
        )
        for room_id in ids
    }
