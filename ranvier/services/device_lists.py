"""The device_lists stream: who has to refetch whose keys (spec: client-server-api
"Tracking the device list for a user", "Extensions to /sync", GET /keys/changes).

A user's device list changes when one of their devices uploads identity keys, is renamed
or deleted, and when their cross-signing keys or signatures change; each change has a
position (storage/device_lists.py). A syncing user hears of changes of everyone they share a
room with, and of everyone they newly share a room with (`changed`), and of those they no
longer share any room with (`left`). Every change wakes the long-polls of the user and of
the rooms they are in.

It also tells a device how many one-time keys it has left and which fallback keys are
unused (`device_one_time_keys_count`, `device_unused_fallback_key_types`), on every sync.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ranvier.errors import MatrixError
from ranvier.services.stream_notify import Notify
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database
from ranvier.storage.device_lists import DEVICE_LISTS_STREAM, DeviceListStore
from ranvier.storage.e2e_keys import E2eKeyStore
from ranvier.storage.sync import UserMemberships
from ranvier.streams.sync_token import InvalidSyncToken, SyncToken

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
JoinedRooms = Callable[[str], Awaitable[list[str]]]
# tells other servers of a change at a position (services/federation/device_lists.py)
Publish = Callable[[str, int], Awaitable[None]]


class DeviceListService:
    stream_name = DEVICE_LISTS_STREAM

    def __init__(
        self,
        db: Database,
        store: DeviceListStore,
        keys: E2eKeyStore,
        joined_rooms: JoinedRooms,
        notify: Notify,
        position: int,
        publish: Publish | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._keys = keys
        self._joined_rooms = joined_rooms
        self._notify = notify
        self._position = position
        # None when we send nothing to other servers (send_federation off)
        self._publish = publish

    @classmethod
    async def create(
        cls,
        db: Database,
        store: DeviceListStore,
        keys: E2eKeyStore,
        joined_rooms: JoinedRooms,
        notify: Notify,
        publish: Publish | None = None,
    ) -> DeviceListService:
        position = await store.current_stream_position()
        return cls(db, store, keys, joined_rooms, notify, position, publish)

    def current_position(self) -> int:
        return self._position

    async def changed(self, user_id: str, position: int) -> None:
        """The user's device list changed at `position` (committed): wake the user and
        everyone in a room with them, and tell the servers in those rooms."""
        self._position = max(self._position, position)
        rooms = await self._joined_rooms(user_id)
        self._notify(DEVICE_LISTS_STREAM, position, rooms=rooms, users=(user_id,))
        if self._publish is not None:
            try:
                await self._publish(user_id, position)
            except Exception:
                # the change is committed; other servers resync at the next one
                logger.exception("Telling other servers of %s's device change failed", user_id)

    async def changed_for(self, user_id: str, position: int) -> None:
        """A key change at `position` (committed) that only `user_id` is told of: wake
        them alone."""
        self._position = max(self._position, position)
        self._notify(DEVICE_LISTS_STREAM, position, users=(user_id,))

    # -- /sync ------------------------------------------------------------------------------

    async def get_updates(
        self,
        user_id: str,
        memberships: UserMemberships,
        since: SyncToken,
        events_upto: int,
        to_pos: int,
        moved_rooms: set[str] | None = None,
    ) -> JsonDict | None:
        """`device_lists` of an incremental sync from `since` to (events_upto, to_pos):
        {"changed": [...], "left": [...]}, or None when both are empty. `moved_rooms`, when
        known, are the only rooms with events since the token."""
        changed, left = await self._changes(
            user_id, memberships, since, events_upto, to_pos, moved_rooms
        )
        if not changed and not left:
            return None
        return {"changed": sorted(changed), "left": sorted(left)}

    async def key_counts(self, user_id: str, device_id: str) -> JsonDict:
        counts = await self._keys.get_key_counts(user_id, device_id)
        return {
            "device_one_time_keys_count": counts.one_time_keys,
            "device_unused_fallback_key_types": counts.unused_fallback_algorithms,
            # the name clients used before fallback keys were in the spec (MSC2732)
            "org.matrix.msc2732.device_unused_fallback_key_types": (
                counts.unused_fallback_algorithms
            ),
        }

    # -- GET /keys/changes ------------------------------------------------------------------

    async def keys_changes(self, user_id: str, from_token: str, to_token: str) -> JsonDict:
        """GET /keys/changes"""
        try:
            since = SyncToken.parse(from_token)
            upto = SyncToken.parse(to_token)
        except InvalidSyncToken as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        memberships = await sync_store.get_memberships(self._db, user_id, since.events, upto.events)
        changed, left = await self._changes(
            user_id, memberships, since, upto.events, upto.device_lists
        )
        return {"changed": sorted(changed), "left": sorted(left)}

    async def _changes(
        self,
        user_id: str,
        memberships: UserMemberships,
        since: SyncToken,
        events_upto: int,
        device_lists_upto: int,
        moved_rooms: set[str] | None = None,
    ) -> tuple[set[str], set[str]]:
        joined = [r for r, m in memberships.now.items() if m.membership == "join"]
        was_joined = [r for r, m in memberships.before.items() if m.membership == "join"]
        changed: set[str] = set()
        if device_lists_upto > since.device_lists:
            changed = await self._store.get_changed_users(
                user_id, joined, since.device_lists, device_lists_upto
            )
        # who came or went, in the rooms the user is in now or was in at `since`
        rooms = set(joined) | set(was_joined)
        if moved_rooms is not None:
            # memberships change only by events
            rooms &= moved_rooms
        came: set[str] = set()
        went: set[str] = set()
        if events_upto > since.events and rooms:
            latest: dict[tuple[str, str], str] = {}
            for change in await self._store.get_membership_changes(
                rooms, since.events, events_upto
            ):
                latest[(change.room_id, change.user_id)] = change.membership
            for (_, member), membership in latest.items():
                (came if membership == "join" else went).add(member)
        rooms_joined_since = set(joined) & memberships.joined_since
        rooms_left = set(was_joined) - set(joined)
        if rooms_joined_since:
            came |= await self._store.get_joined_members(rooms_joined_since)
        if rooms_left:
            went |= await self._store.get_joined_members(rooms_left)
        if not came and not went:
            return changed, set()
        room_mates = await self._store.get_joined_members(joined)
        # as the spec allows, a new shared room counts even if another was shared already
        changed |= (came & room_mates) - {user_id}
        left = went - room_mates - {user_id}
        return changed - left, left
