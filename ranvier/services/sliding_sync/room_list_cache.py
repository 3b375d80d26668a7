"""Each user's memberships and their rooms' bump stamps, kept in memory between sliding
sync requests (LRU by user), so a request reads only what moved since the last one.

An entry holds, up to a room-events position, every membership row of the user (per
room, oldest first) and the bump stamps of those rooms. A later request reads the rows
written after that position (only if the sender's membership change log says the user has
some, or no longer knows), and the stamps only of the rooms the sender's change log
says had events since (the log is told of a room before its position is published, so
nothing at or below the request's position is missed). Rows changed in place rather than
written anew (`forgotten` set by /forget; a room's rows purged) do not show in that read:
their paths call `invalidate_user` / `invalidate_all`, and a read that started before an
invalidation does not store what it found.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from cachetools import LRUCache

from ranvier.services.sliding_sync.room_list import ListedRoom, bump_stamp, sort_rooms
from ranvier.storage import sliding_sync as store
from ranvier.storage.database import Database
from ranvier.storage.sync import MembershipAt, UserMemberships

# a user in 1,000 rooms costs about 200 kB
DEFAULT_MAX_USERS = 256

# room IDs among those given that changed after a position, None if no longer known
ChangedSince = Callable[[Collection[str], int], set[str] | None]


ACTIVE = ("join", "invite", "knock")


@dataclass
class _Entry:
    position: int
    # room ID -> the user's membership rows in it, oldest first (never mutated: an update
    # makes new lists, so a reader holding an older entry is not disturbed)
    room_to_rows: dict[str, list[MembershipAt]]
    room_to_stamp: dict[str, int]
    # the rooms a list may show at `position` (joined, invited, knocked, not forgotten),
    # sorted: made by the entry's first request, reused by those at the same position
    active: list[ListedRoom] | None = field(default=None)


class RoomListCache:
    def __init__(
        self,
        db: Database,
        changed_since: ChangedSince,
        members_changed_since: ChangedSince,
        max_users: int = DEFAULT_MAX_USERS,
    ) -> None:
        self._db = db
        # rooms with events after a position; users with membership rows after one
        self._changed_since = changed_since
        self._members_changed_since = members_changed_since
        self._entries: LRUCache[str, _Entry] = LRUCache(maxsize=max_users)
        # bumped by every invalidation: a read begun under an older count is not stored
        self._user_to_generation: dict[str, int] = {}
        self._generation = 0

    def invalidate_user(self, user_id: str) -> None:
        self._entries.pop(user_id, None)
        self._user_to_generation[user_id] = self._user_to_generation.get(user_id, 0) + 1

    def invalidate_all(self) -> None:
        self._entries.clear()
        self._generation += 1

    async def get(
        self, user_id: str, since: int, upto: int
    ) -> tuple[UserMemberships, dict[str, int], list[ListedRoom]]:
        """The user's memberships at `since` and at `upto`, their rooms' bump stamps, and
        the rooms a list may show at `upto` in list order (not to be modified)."""
        entry = await self._entry(user_id, upto)
        if entry.active is None:
            entry.active = sort_rooms(
                listed
                for rows in entry.room_to_rows.values()
                if (listed := _listed(rows[-1], entry.room_to_stamp, upto)) is not None
            )
        return _memberships(entry, since), entry.room_to_stamp, entry.active

    async def _entry(self, user_id: str, upto: int) -> _Entry:
        generation = (self._generation, self._user_to_generation.get(user_id, 0))
        old = self._entries.get(user_id)
        if old is not None and old.position == upto:
            return old
        if old is None or old.position > upto:
            # a request whose position is behind the entry's (a concurrent one moved it
            # on) reads afresh rather than filter the entry
            entry = await self._read(user_id, upto)
        else:
            entry = await self._extend(old, user_id, upto)
        current = self._entries.get(user_id)
        if (self._generation, self._user_to_generation.get(user_id, 0)) == generation and (
            current is None or current.position <= entry.position
        ):
            self._entries[user_id] = entry
        return entry

    async def _read(self, user_id: str, upto: int) -> _Entry:
        rows, stamps = await store.get_room_rows(self._db, user_id, -1 << 62, upto)
        room_to_rows: dict[str, list[MembershipAt]] = {}
        for row in rows:
            room_to_rows.setdefault(row.room_id, []).append(row)
        return _Entry(upto, room_to_rows, stamps)

    async def _extend(self, old: _Entry, user_id: str, upto: int) -> _Entry:
        changed = self._changed_since(old.room_to_rows, old.position)
        if changed is None:
            return await self._read(user_id, upto)
        rows: list[MembershipAt] = []
        new_stamps: dict[str, int] = {}
        if self._members_changed_since([user_id], old.position) != set():
            rows, new_stamps = await store.get_room_rows(self._db, user_id, old.position, upto)
        room_to_rows = old.room_to_rows
        if rows:
            room_to_rows = dict(room_to_rows)
            for row in rows:
                # a row moved to a newer position (an outlier's membership taking effect)
                # keeps its event ID: it replaces its older self
                kept = [r for r in room_to_rows.get(row.room_id, ()) if r.event_id != row.event_id]
                kept.append(row)
                room_to_rows[row.room_id] = kept
        stamps = old.room_to_stamp
        if changed or new_stamps:
            stamps = {**stamps, **new_stamps, **await store.get_bump_stamps(self._db, changed)}
        entry = _Entry(upto, room_to_rows, stamps)
        if old.active is not None:
            # the old order, with only the rooms whose membership or stamp moved re-placed
            moved = {*changed, *new_stamps, *(row.room_id for row in rows)}
            active = [room for room in old.active if room.room_id not in moved]
            for room_id in moved:
                listed = _listed(room_to_rows[room_id][-1], stamps, upto)
                if listed is not None:
                    insort(active, listed, key=_order)
            entry.active = active
        return entry


def _order(room: ListedRoom) -> tuple[int, str]:
    # as room_list.sort_rooms
    return (-room.bump_stamp, room.room_id)


def _listed(m: MembershipAt, stamps: dict[str, int], upto: int) -> ListedRoom | None:
    if m.membership not in ACTIVE or m.forgotten:
        return None
    return ListedRoom(
        m.room_id,
        m.membership,
        m.event_id,
        m.stream,
        bump_stamp(m.membership, m.stream, stamps.get(m.room_id), upto),
    )


def _memberships(entry: _Entry, since: int) -> UserMemberships:
    now: dict[str, MembershipAt] = {}
    before: dict[str, MembershipAt] = {}
    joined_since: set[str] = set()
    for room_id, rows in entry.room_to_rows.items():
        latest = rows[-1]
        now[room_id] = latest
        if latest.stream <= since:
            before[room_id] = latest
            continue
        for row in reversed(rows):
            if row.stream <= since:
                before[room_id] = row
                break
            if row.membership == "join":
                joined_since.add(room_id)
    return UserMemberships(now, before, joined_since)
