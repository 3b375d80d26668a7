"""Account data (spec: client-server-api "Client Config") and room tags ("Room Tagging").

Tags are room account data of type `m.tag`, so /sync delivers them with the rest; every
change has a position in the account_data stream, returned to the caller so that the
notifier (with /sync) can wake whoever waits for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from cachetools import LRUCache

from ranvier.errors import MatrixError
from ranvier.storage.account_data import AccountDataChanges, AccountDataStore
from ranvier.streams.change_log import ChangeLog

FULLY_READ = "m.fully_read"
PUSH_RULES = "m.push_rules"
# spec: "Room Tagging" - tag names are at most 255 bytes
MAX_TAG_BYTES = 255


IGNORED_USER_LIST = "m.ignored_user_list"
# users whose global account data read on hot paths is kept (a few hundred bytes each)
GLOBAL_CACHE_USERS = 4096

JsonObject = dict[str, Any]


class GlobalAccountDataReader(Protocol):
    async def get_global(self, user_id: str, data_type: str) -> JsonObject | None: ...


class GlobalAccountDataCache:
    """The global account data that every sync reads (m.direct, m.ignored_user_list), kept
    per user and dropped at each change of theirs (AccountDataService.on_change), so a sync
    that finds nothing new asks the database nothing for it. Changes made by another process
    would not be seen: there is one process today."""

    def __init__(self, store: AccountDataStore, max_users: int = GLOBAL_CACHE_USERS) -> None:
        self._store = store
        self._user_to_types: LRUCache[str, dict[str, JsonObject | None]] = LRUCache(max_users)
        # bumped at each change: a read begun before it does not keep what it found
        self._user_to_generation: dict[str, int] = {}

    def invalidate(self, user_id: str, _position: int | None = None) -> None:
        self._user_to_types.pop(user_id, None)
        self._user_to_generation[user_id] = self._user_to_generation.get(user_id, 0) + 1

    async def get_global(self, user_id: str, data_type: str) -> JsonObject | None:
        types = self._user_to_types.get(user_id)
        if types is not None and data_type in types:
            return types[data_type]
        generation = self._user_to_generation.get(user_id, 0)
        content = await self._store.get_global(user_id, data_type)
        if self._user_to_generation.get(user_id, 0) == generation:
            self._user_to_types.setdefault(user_id, {})[data_type] = content
        return content


async def ignored_users(store: GlobalAccountDataReader, user_id: str) -> frozenset[str]:
    """spec: "Ignoring Users" - the user IDs keyed in `ignored_users` of the user's
    m.ignored_user_list; a malformed list ignores nobody."""
    content = await store.get_global(user_id, IGNORED_USER_LIST)
    listed = content.get("ignored_users") if isinstance(content, dict) else None
    if not isinstance(listed, dict):
        return frozenset()
    return frozenset(key for key in listed if isinstance(key, str) and key != user_id)


def forbidden(error: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", error)


def not_found(error: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def check_settable(data_type: str) -> None:
    """spec: 405 M_BAD_JSON for types the server controls; Synapse refuses these two."""
    if data_type == FULLY_READ:
        raise MatrixError(
            405,
            "M_BAD_JSON",
            "Cannot set m.fully_read through this API. Use /rooms/{roomId}/read_markers",
        )
    if data_type == PUSH_RULES:
        raise MatrixError(
            405, "M_BAD_JSON", "Cannot set m.push_rules through this API. Use /pushrules"
        )


def check_room_id(room_id: str) -> None:
    # room IDs of room version 12 have no server name, so only the sigil is certain
    if not room_id.startswith("!") or len(room_id) < 2:
        raise MatrixError(400, "M_INVALID_PARAM", f"{room_id!r} is not a valid room ID")


def check_tag_content(tag: str, content: dict[str, Any]) -> None:
    if len(tag.encode()) > MAX_TAG_BYTES:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"Tag names are at most {MAX_TAG_BYTES} bytes long"
        )
    # that `order` is a number was checked where the request was read
    order = content.get("order")
    if order is not None and not 0 <= order <= 1:
        raise MatrixError(400, "M_INVALID_PARAM", "'order' must be between 0 and 1")


class AccountDataService:
    def __init__(self, store: AccountDataStore) -> None:
        self._store = store
        # global types the server makes rather than stores: m.push_rules, from push
        self._type_to_generator: dict[str, Callable[[str], Awaitable[dict[str, Any]]]] = {}
        # (user_id, position) after every change: the notifier wakes the user's syncs
        self.on_change: list[Callable[[str, int], None]] = []
        # user ID -> the position of their last change, from the first sync on; every write
        # below is recorded, so a sync can tell without a query that nothing changed
        self._user_changes = ChangeLog(floor=0)
        self._floor_known = False
        # the stream's position, read once and then moved on by every change made here
        # (positions are handed out and committed one after another, so the newest one
        # told is the stream's); None until first asked
        self._position: int | None = None

    def serve_generated(
        self, data_type: str, generate: Callable[[str], Awaitable[dict[str, Any]]]
    ) -> None:
        self._type_to_generator[data_type] = generate

    async def current_stream_position(self) -> int:
        """The account data stream's position, without a query once known."""
        if self._position is None:
            read = await self._store.current_stream_position()
            # a change told while reading is at least as new
            self._position = max(read, self._position or 0)
        return self._position

    def _advance(self, position: int) -> None:
        if self._position is not None:
            self._position = max(self._position, position)

    def _changed(self, user_id: str, position: int | None) -> int | None:
        if position is not None:
            self._advance(position)
            self._user_changes.record(user_id, position)
            for callback in self.on_change:
                callback(user_id, position)
        return position

    async def changes_since(self, user_id: str, since: int | None) -> AccountDataChanges:
        """For /sync: what changed after stream position `since` (None: everything). When
        nothing did, the answer keeps `since` as its position, without a query."""
        if not self._floor_known:
            # changes before this read are at or below it; later ones are all recorded
            self._user_changes.floor = await self._store.current_stream_position()
            self._floor_known = True
        if since is None:
            return await self._store.get_changes_since(user_id, 0)
        if self._user_changes.changed_since([user_id], since) == set():
            return AccountDataChanges(global_data={}, room_data={}, position=since)
        return await self._store.get_changes_since(user_id, since)

    @staticmethod
    def _check_owner(requester: str, user_id: str, action: str) -> None:
        if requester != user_id:
            raise forbidden(f"Cannot {action} for other users")

    async def set_global(
        self, requester: str, user_id: str, data_type: str, content: dict[str, Any]
    ) -> int:
        self._check_owner(requester, user_id, "set account data")
        check_settable(data_type)
        position = await self._store.set_global(user_id, data_type, content)
        self._changed(user_id, position)
        return position

    async def get_global(self, requester: str, user_id: str, data_type: str) -> dict[str, Any]:
        self._check_owner(requester, user_id, "get account data")
        generate = self._type_to_generator.get(data_type)
        if generate is not None:
            return await generate(user_id)
        content = await self._store.get_global(user_id, data_type)
        if content is None:
            raise not_found("Account data not found")
        return content

    async def set_room(
        self,
        requester: str,
        user_id: str,
        room_id: str,
        data_type: str,
        content: dict[str, Any],
    ) -> int:
        self._check_owner(requester, user_id, "set account data")
        check_room_id(room_id)
        check_settable(data_type)
        position = await self._store.set_room(user_id, room_id, data_type, content)
        self._changed(user_id, position)
        return position

    async def set_fully_read(self, user_id: str, room_id: str, event_id: str) -> int:
        """Move the user's read marker (spec: "Fully read markers"); the receipts service
        calls this for /read_markers and m.fully_read receipts, after its own checks."""
        position = await self._store.set_room(user_id, room_id, FULLY_READ, {"event_id": event_id})
        # the receipts service tells the notifier itself
        self._advance(position)
        self._user_changes.record(user_id, position)
        return position

    async def get_room(
        self, requester: str, user_id: str, room_id: str, data_type: str
    ) -> dict[str, Any]:
        self._check_owner(requester, user_id, "get account data")
        check_room_id(room_id)
        if data_type == PUSH_RULES:
            # as Synapse: there are no per-room push rules
            return {}
        content = await self._store.get_room(user_id, room_id, data_type)
        if content is None:
            raise not_found("Room account data not found")
        return content

    async def get_tags(self, requester: str, user_id: str, room_id: str) -> dict[str, Any]:
        self._check_owner(requester, user_id, "get tags")
        check_room_id(room_id)
        return await self._store.get_tags(user_id, room_id)

    async def add_tag(
        self, requester: str, user_id: str, room_id: str, tag: str, content: dict[str, Any]
    ) -> int | None:
        self._check_owner(requester, user_id, "add tags")
        check_room_id(room_id)
        check_tag_content(tag, content)

        def put(tags: dict[str, Any]) -> bool:
            if tags.get(tag) == content:
                return False
            tags[tag] = content
            return True

        return self._changed(user_id, await self._store.change_tags(user_id, room_id, put))

    async def remove_tag(self, requester: str, user_id: str, room_id: str, tag: str) -> int | None:
        self._check_owner(requester, user_id, "remove tags")
        check_room_id(room_id)

        def drop(tags: dict[str, Any]) -> bool:
            if tag not in tags:
                return False
            del tags[tag]
            return True

        # removing a tag the room does not have succeeds, as in Synapse
        return self._changed(user_id, await self._store.change_tags(user_id, room_id, drop))
