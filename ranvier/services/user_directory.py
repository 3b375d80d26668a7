"""The user directory (spec: client-server-api "User Directory", POST /user_directory/search).

A searcher finds the users who share a room with them and the users joined to rooms that
anyone may look into: a `public` join rule or `world_readable` history (the spec's minimum);
with `user_directory.search_all_users`, also every local user. Deactivated and support users
are never found, locked users only with `show_locked_users`, as in Synapse.

Room membership is read from current state when searching. What is kept here is which rooms
are public to the directory and remote users' profiles, updated after each persisted batch
(`on_persisted`) and rebuilt from scratch by the `populate_user_directory` background
update. Local profiles are read where they live, so a profile change is visible at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.config.models import UserDirectoryConfig
from ranvier.protocol.events import Event
from ranvier.storage import user_directory as store
from ranvier.storage.background_updates import BackgroundUpdater, BatchResult
from ranvier.storage.database import Database
from ranvier.storage.user_directory import DirectorySearch, DirectoryUser, RoomDirectoryState

POPULATE_USER_DIRECTORY = "populate_user_directory"
DEFAULT_LIMIT = 10
# a bound on one answer, so a client cannot make the server list every user at once
MAX_LIMIT = 100
_WORD = re.compile(r"[^\W_]+")
_DIRECTORY_STATE = frozenset({"m.room.join_rules", "m.room.history_visibility"})


def search_words(term: str) -> list[str]:
    """The words of a search term, lower-cased: letters and digits only."""
    return [word.casefold() for word in _WORD.findall(term)]


def is_public_to_directory(
    join_rules: dict[str, Any] | None, history_visibility: dict[str, Any] | None
) -> bool:
    """spec: members of rooms with a public join rule or world_readable history are visible
    to every searcher."""
    return (join_rules or {}).get("join_rule") == "public" or (history_visibility or {}).get(
        "history_visibility"
    ) == "world_readable"


def _profile_from_member(user_id: str, content: dict[str, Any]) -> DirectoryUser:
    name, avatar = content.get("displayname"), content.get("avatar_url")
    return DirectoryUser(
        user_id,
        name if isinstance(name, str) and name else None,
        avatar if isinstance(avatar, str) and avatar else None,
    )


@dataclass(frozen=True)
class SearchResult:
    users: list[DirectoryUser]
    limited: bool

    def json(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for user in self.users:
            entry: dict[str, Any] = {"user_id": user.user_id}
            if user.display_name is not None:
                entry["display_name"] = user.display_name
            if user.avatar_url is not None:
                entry["avatar_url"] = user.avatar_url
            results.append(entry)
        return {"results": results, "limited": self.limited}


class UserDirectoryService:
    def __init__(self, config: UserDirectoryConfig, db: Database, server_name: str) -> None:
        self._config = config
        self._db = db
        self._server_name = server_name

    def _is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name)

    async def search(self, searcher: str, term: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
        if not self._config.enabled:
            # as Synapse: a switched-off directory answers, with nobody in it
            return SearchResult([], False)
        limit = min(limit, MAX_LIMIT)
        found = await store.search_users(
            self._db,
            DirectorySearch(
                searcher=searcher,
                words=search_words(term),
                # one more than asked tells whether the list was cut
                limit=limit + 1,
                server_name=self._server_name,
                search_all_users=self._config.search_all_users,
                prefer_local_users=self._config.prefer_local_users,
                show_locked_users=self._config.show_locked_users,
                exclude_remote_users=self._config.exclude_remote_users,
            ),
        )
        return SearchResult(found[:limit], len(found) > limit)

    # -- keeping it current ------------------------------------------------------------------

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """RoomEventSender callback: rooms turning public or private, remote members, and
        the remote members of rooms our users join."""
        rooms_to_check: set[str] = set()
        remote_joined: list[DirectoryUser] = []
        remote_left: set[str] = set()
        for event in events:
            if not event.is_state() or event.rejected_reason is not None:
                continue
            if event.type in _DIRECTORY_STATE and event.state_key == "":
                rooms_to_check.add(event.room_id)
            elif event.type == "m.room.member" and event.state_key is not None:
                user_id = event.state_key
                if self._is_local(user_id):
                    if event.membership == "join":
                        # a join through another server brings the room's members as
                        # outliers, which no listener hears of: read them from its state
                        rooms_to_check.add(event.room_id)
                    continue
                if event.membership == "join":
                    remote_joined.append(_profile_from_member(user_id, event.content))
                    remote_left.discard(user_id)
                else:
                    remote_left.add(user_id)
        if not rooms_to_check and not remote_joined and not remote_left:
            return
        async with self._db.transaction() as conn:
            states = await store.room_directory_state(
                conn, sorted(rooms_to_check), self._server_name
            )
            await self._apply(conn, states)
            await store.upsert_remote_users(conn, remote_joined)
            await store.remove_remote_users_without_rooms(conn, remote_left)

    # -- rebuilding ----------------------------------------------------------------------------

    def register_background_updates(self, updater: BackgroundUpdater) -> None:
        updater.register(POPULATE_USER_DIRECTORY, self._populate_batch)

    async def _populate_batch(
        self, conn: AsyncConnection, progress: dict[str, Any], batch_size: int
    ) -> BatchResult:
        """One batch of rooms, in room ID order; the first batch starts from empty tables."""
        after = progress.get("after_room_id")
        if not isinstance(after, str):
            await store.clear(conn)
            after = ""
        room_ids = await store.next_room_ids(conn, after, batch_size)
        if not room_ids:
            return BatchResult({"after_room_id": after}, 0, True)
        states = await store.room_directory_state(conn, room_ids, self._server_name)
        await self._apply(conn, states)
        return BatchResult({"after_room_id": room_ids[-1]}, len(room_ids), False)

    async def _apply(self, conn: AsyncConnection, states: Sequence[RoomDirectoryState]) -> None:
        remote: list[DirectoryUser] = []
        for state in states:
            public = is_public_to_directory(state.join_rules, state.history_visibility)
            await store.set_room_public(conn, state.room_id, public)
            remote += [_profile_from_member(u, c) for u, c in state.remote_members.items()]
        await store.upsert_remote_users(conn, remote)
