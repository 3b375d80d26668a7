"""The user directory: who POST /user_directory/search may find.

Membership is read from the rooms' current state (current_state_events) as it stands, so it
is never stale. Two small tables hold what current state does not answer cheaply:
- user_directory_public_rooms: rooms whose members anyone may find (public join rule or
  world_readable history), kept by the service as those state events change;
- user_directory_remote_users: remote users' display names and avatars as their member
  events show them (local users' profiles are read from `profiles`, their one home).

Matching: every word of the search term must start a word of the display name or of the
user ID (split at the usual separators), case-insensitively, as Synapse's prefix search
does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    Table,
    Text,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.metadata import metadata
from ranvier.storage.profiles import profiles
from ranvier.storage.rooms import rooms
from ranvier.storage.state import current_state_events
from ranvier.storage.users import users

MEMBER = "m.room.member"
JOIN = "join"
SUPPORT_USER_TYPE = "support"
# characters that separate words in user IDs and display names, for prefix matching
_SEPARATORS = "@:._-=/()[]"

user_directory_public_rooms = Table(
    "user_directory_public_rooms",
    metadata,
    Column("room_id", Text, primary_key=True),
)

user_directory_remote_users = Table(
    "user_directory_remote_users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("display_name", Text, nullable=True),
    Column("avatar_url", Text, nullable=True),
)


@dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    display_name: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class DirectorySearch:
    searcher: str
    words: Sequence[str]  # lower case letters and digits only
    limit: int
    server_name: str
    search_all_users: bool = False
    prefer_local_users: bool = False
    show_locked_users: bool = False
    exclude_remote_users: bool = False


@dataclass(frozen=True)
class RoomDirectoryState:
    """What the directory needs to know of one room's current state."""

    room_id: str
    join_rules: dict[str, Any] | None
    history_visibility: dict[str, Any] | None
    # remote members that are joined: user_id -> their member event's content
    remote_members: dict[str, dict[str, Any]]


def _words_of(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """' ' + the lower-cased text with separators turned into spaces: a word starts after
    a space, so LIKE '% word%' is a prefix match on any word."""
    value: ColumnElement[Any] = func.lower(func.coalesce(column, ""))
    for separator in _SEPARATORS:
        value = func.replace(value, separator, " ")
    return literal(" ") + value


def _candidates(query: DirectorySearch) -> Any:
    local = (
        select(
            users.c.user_id,
            profiles.c.displayname.label("display_name"),
            profiles.c.avatar_url,
            literal(1, Integer).label("is_local"),
        )
        .select_from(users.join(profiles, profiles.c.user_id == users.c.user_id))
        .where(
            users.c.deactivated == false(),
            or_(users.c.user_type.is_(None), users.c.user_type != SUPPORT_USER_TYPE),
        )
    )
    if not query.show_locked_users:
        local = local.where(users.c.locked == false())
    parts = [local]
    if not query.exclude_remote_users:
        parts.append(
            select(
                user_directory_remote_users.c.user_id,
                user_directory_remote_users.c.display_name,
                user_directory_remote_users.c.avatar_url,
                literal(0, Integer).label("is_local"),
            )
        )
    return union_all(*parts).subquery("candidates")


def _visible_user_ids(searcher: str) -> tuple[Any, Any]:
    """(users sharing a room with the searcher, users in rooms public to the directory)."""
    mine = current_state_events.alias("mine")
    theirs = current_state_events.alias("theirs")
    shared = (
        select(theirs.c.state_key)
        .select_from(mine.join(theirs, theirs.c.room_id == mine.c.room_id))
        .where(
            mine.c.type == MEMBER,
            mine.c.state_key == searcher,
            mine.c.membership == JOIN,
            theirs.c.type == MEMBER,
            theirs.c.membership == JOIN,
            # as Synapse: sharing a private room with oneself makes nobody visible, so a
            # user finds themselves only through a public room (SyTest 52user-directory)
            theirs.c.state_key != searcher,
        )
    )
    members = current_state_events
    public = (
        select(members.c.state_key)
        .select_from(
            members.join(
                user_directory_public_rooms,
                user_directory_public_rooms.c.room_id == members.c.room_id,
            )
        )
        .where(members.c.type == MEMBER, members.c.membership == JOIN)
    )
    return shared, public


async def search_users(db: Database, query: DirectorySearch) -> list[DirectoryUser]:
    """Up to `limit` users the searcher may find whose names match every word, best first."""
    if not query.words:
        return []
    candidates = _candidates(query)
    name_words = _words_of(candidates.c.display_name)
    id_words = _words_of(candidates.c.user_id)
    matches = [
        or_(name_words.like(f"% {word}%"), id_words.like(f"% {word}%")) for word in query.words
    ]
    shared, public = _visible_user_ids(query.searcher)
    visible: list[ColumnElement[bool]] = [
        candidates.c.user_id.in_(shared),
        candidates.c.user_id.in_(public),
    ]
    if query.search_all_users:
        visible.append(candidates.c.is_local == 1)
    first = query.words[0]
    # a name or localpart that starts with the first word beats a later-word match
    starts = case(
        (
            or_(
                func.lower(func.coalesce(candidates.c.display_name, "")).like(f"{first}%"),
                func.lower(candidates.c.user_id).like(f"@{first}%"),
            ),
            0,
        ),
        else_=1,
    )
    ordering: list[Any] = []
    if query.prefer_local_users:
        ordering.append(candidates.c.is_local.desc())
    ordering += [
        starts,
        case((candidates.c.display_name.is_(None), 1), else_=0),
        case((candidates.c.avatar_url.is_(None), 1), else_=0),
        func.lower(func.coalesce(candidates.c.display_name, candidates.c.user_id)),
        candidates.c.user_id,
    ]
    statement = (
        select(candidates.c.user_id, candidates.c.display_name, candidates.c.avatar_url)
        .where(and_(*matches), or_(*visible))
        .order_by(*ordering)
        .limit(query.limit)
    )
    async with db.read() as conn:
        return [
            DirectoryUser(row.user_id, row.display_name, row.avatar_url)
            for row in await conn.execute(statement)
        ]


async def set_room_public(conn: AsyncConnection, room_id: str, public: bool) -> None:
    await conn.execute(
        delete(user_directory_public_rooms).where(user_directory_public_rooms.c.room_id == room_id)
    )
    if public:
        await conn.execute(insert(user_directory_public_rooms).values(room_id=room_id))


async def upsert_remote_users(conn: AsyncConnection, entries: Sequence[DirectoryUser]) -> None:
    if not entries:
        return
    ids = [entry.user_id for entry in entries]
    await conn.execute(
        delete(user_directory_remote_users).where(user_directory_remote_users.c.user_id.in_(ids))
    )
    latest = {entry.user_id: entry for entry in entries}
    await conn.execute(
        insert(user_directory_remote_users),
        [
            {"user_id": e.user_id, "display_name": e.display_name, "avatar_url": e.avatar_url}
            for e in latest.values()
        ],
    )


async def remove_remote_users_without_rooms(conn: AsyncConnection, user_ids: Iterable[str]) -> None:
    """Forget the remote users among `user_ids` who are no longer joined to any room here."""
    ids = list(user_ids)
    if not ids:
        return
    still_joined = select(current_state_events.c.state_key).where(
        current_state_events.c.type == MEMBER,
        current_state_events.c.state_key.in_(ids),
        current_state_events.c.membership == JOIN,
    )
    await conn.execute(
        delete(user_directory_remote_users).where(
            user_directory_remote_users.c.user_id.in_(ids),
            user_directory_remote_users.c.user_id.not_in(still_joined),
        )
    )


async def clear(conn: AsyncConnection) -> None:
    await conn.execute(delete(user_directory_public_rooms))
    await conn.execute(delete(user_directory_remote_users))


async def next_room_ids(conn: AsyncConnection, after: str, limit: int) -> list[str]:
    query = select(rooms.c.room_id).where(rooms.c.room_id > after).order_by(rooms.c.room_id)
    return [row.room_id for row in await conn.execute(query.limit(limit))]


async def room_directory_state(
    conn: AsyncConnection, room_ids: Sequence[str], server_name: str
) -> list[RoomDirectoryState]:
    """The join rules, history visibility and joined remote members of each room, from its
    current state."""
    if not room_ids:
        return []
    cse = current_state_events
    remote = and_(
        cse.c.type == MEMBER,
        cse.c.membership == JOIN,
        # a remote user's ID does not end with ":" + our server name
        ~cse.c.state_key.like(f"%:{server_name}"),
    )
    query = (
        select(cse.c.room_id, cse.c.type, cse.c.state_key, events.c.json)
        .select_from(cse.join(events, events.c.event_id == cse.c.event_id))
        .where(
            cse.c.room_id.in_(list(room_ids)),
            or_(
                and_(
                    cse.c.type.in_(["m.room.join_rules", "m.room.history_visibility"]),
                    cse.c.state_key == "",
                ),
                remote,
            ),
        )
    )
    by_room = {room_id: RoomDirectoryState(room_id, None, None, {}) for room_id in room_ids}
    for row in await conn.execute(query):
        content = orjson.loads(row.json).get("content")
        content = content if isinstance(content, dict) else {}
        state = by_room[row.room_id]
        if row.type == "m.room.join_rules":
            by_room[row.room_id] = RoomDirectoryState(
                row.room_id, content, state.history_visibility, state.remote_members
            )
        elif row.type == "m.room.history_visibility":
            by_room[row.room_id] = RoomDirectoryState(
                row.room_id, state.join_rules, content, state.remote_members
            )
        else:
            state.remote_members[row.state_key] = content
    return list(by_room.values())
