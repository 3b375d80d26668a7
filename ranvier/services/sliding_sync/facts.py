"""What sliding sync's list filters look at (MSC4186 `filters`), loaded only for the
filters a request uses: the user's direct chats (m.direct), encrypted rooms, room types,
the children of spaces, and the user's tags."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ranvier.services.account_data import GlobalAccountDataReader
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.sliding_sync.request import ListFilters
from ranvier.services.sliding_sync.room_list import ListedRoom, RoomFacts
from ranvier.storage import state as state_store
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database

CREATE = "m.room.create"
ENCRYPTION = "m.room.encryption"
SPACE_CHILD = "m.space.child"


class RoomFactsLoader:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        account_data: AccountDataStore,
        global_data: GlobalAccountDataReader,
    ) -> None:
        self._db = db
        self._loader = loader
        self._account_data = account_data
        # m.direct, read at every request: kept in memory
        self._global_data = global_data

    async def load(
        self, user_id: str, rooms: Collection[ListedRoom], filters: Sequence[ListFilters]
    ) -> RoomFacts:
        room_ids = [room.room_id for room in rooms]
        # m.direct is read always: every room sent says whether it is a direct chat
        dm_rooms = await self._dm_rooms(user_id)
        encrypted: set[str] = set()
        room_types: dict[str, str | None] | None = None
        if any(
            f.is_encrypted is not None or f.room_types is not None or f.not_room_types
            for f in filters
        ):
            room_types = {}
            found = await state_store.get_current_state_ids_for_rooms(
                self._db, room_ids, (CREATE, ENCRYPTION)
            )
            creates = await self._loader.get_events(
                ids[CREATE] for ids in found.values() if CREATE in ids
            )
            for room_id, ids in found.items():
                if ENCRYPTION in ids:
                    encrypted.add(room_id)
                create = creates.get(ids.get(CREATE, ""))
                kind = create.content.get("type") if create is not None else None
                room_types[room_id] = kind if isinstance(kind, str) else None
        children: set[str] = set()
        for space_id in {space for f in filters for space in f.spaces or ()}:
            children.update(await self._children(space_id))
        room_tags: dict[str, Collection[str]] | None = None
        if any(f.tags is not None or f.not_tags for f in filters):
            room_tags = {
                room_id: set(await self._account_data.get_tags(user_id, room_id))
                for room_id in room_ids
            }
        return RoomFacts(dm_rooms, encrypted, room_types, children, room_tags)

    async def _dm_rooms(self, user_id: str) -> set[str]:
        direct = await self._global_data.get_global(user_id, "m.direct")
        rooms: set[str] = set()
        for room_ids in (direct or {}).values():
            if isinstance(room_ids, list):
                rooms.update(r for r in room_ids if isinstance(r, str))
        return rooms

    async def _children(self, space_id: str) -> set[str]:
        """spec: a space's children are its m.space.child state events with a `via`."""
        state = await state_store.get_current_state_ids(self._db, space_id)
        ids = {key[1]: event_id for key, event_id in state.items() if key[0] == SPACE_CHILD}
        loaded = await self._loader.get_events(ids.values())
        return {
            child
            for child, event_id in ids.items()
            if (event := loaded.get(event_id)) is not None
            and isinstance(event.content.get("via"), list)
            and event.content["via"]
        }
