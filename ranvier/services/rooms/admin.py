"""The server admin's view of rooms: the room list, one room's details, members and state,
and blocking rooms (Synapse's room admin API, so admin tools work unchanged)."""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import state as state_store
from ranvier.storage.room_admin import (
    RoomAdminStore,
    RoomAdminView,
    RoomListQuery,
)

MEMBER = "m.room.member"
# as Synapse: a blocked room can still be left and people can still be banned from it
ALLOWED_IN_BLOCKED_ROOMS = frozenset({"leave", "ban"})


def room_not_found() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "Room not found")


def room_view(view: RoomAdminView) -> dict[str, Any]:
    return {
        "room_id": view.room_id,
        "name": view.name,
        "canonical_alias": view.canonical_alias,
        "joined_members": view.joined_members,
        "joined_local_members": view.joined_local_members,
        "version": view.version,
        "creator": view.creator,
        "encryption": view.encryption,
        "federatable": view.federatable,
        "public": view.public,
        "join_rules": view.join_rules,
        "guest_access": view.guest_access,
        "history_visibility": view.history_visibility,
        "state_events": view.state_events,
        "room_type": view.room_type,
    }


class RoomAdminService:
    def __init__(
        self, store: RoomAdminStore, sender: RoomEventSender, serializer: ClientEventSerializer
    ) -> None:
        self._store = store
        self._sender = sender
        self._serializer = serializer

    async def list_rooms(self, query: RoomListQuery) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms"""
        views, total = await self._store.list_rooms(query)
        result: dict[str, Any] = {
            "rooms": [room_view(view) for view in views],
            "offset": query.start,
            "total_rooms": total,
        }
        # offsets, as Synapse: admin tools pass them back as `from`
        if query.start + query.limit < total:
            result["next_batch"] = query.start + query.limit
        if query.start > 0:
            result["prev_batch"] = max(0, query.start - query.limit)
        return result

    async def room_details(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{room_id}"""
        details = await self._store.get_room_details(room_id)
        if details is None:
            raise room_not_found()
        return {
            **room_view(details.room),
            "topic": details.topic,
            "avatar": details.avatar,
            "joined_local_devices": details.joined_local_devices,
            "forgotten": details.forgotten,
        }

    async def members(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{room_id}/members: the joined members."""
        if not await self._store.room_exists(room_id):
            raise room_not_found()
        members = sorted(await state_store.get_members(self._sender.db, room_id))
        return {"members": members, "total": len(members)}

    async def state(
        self, room_id: str, event_type: str | None, admin_user_id: str
    ) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{room_id}/state: the current state events, of
        `event_type` only if given, in client format, ordered by type then state key."""
        events = await self._state_events(room_id, event_type)
        # an admin sees the state as stored, erased senders' events included
        served = await self._serializer.serialize_events(
            events, requester_user_id=admin_user_id, hide_erased=False
        )
        return {"state": served}

    async def _state_events(self, room_id: str, event_type: str | None) -> list[Event]:
        if not await self._store.room_exists(room_id):
            raise room_not_found()
        state = await state_store.get_current_state_ids(self._sender.db, room_id)
        wanted = sorted(
            (key, event_id)
            for key, event_id in state.items()
            if event_type is None or key[0] == event_type
        )
        loaded = await self._sender.loader.get_events(event_id for _, event_id in wanted)
        return [loaded[event_id] for _, event_id in wanted if event_id in loaded]

    async def get_block(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{room_id}/block"""
        blocker = await self._store.get_blocker(room_id)
        if blocker is None:
            return {"block": False}
        return {"block": True, "user_id": blocker}

    async def set_block(self, room_id: str, block: bool, admin_user_id: str) -> dict[str, Any]:
        """PUT /_synapse/admin/v1/rooms/{room_id}/block; rooms unknown here may be blocked
        ahead of time."""
        if block:
            await self._store.block(room_id, admin_user_id)
        else:
            await self._store.unblock(room_id)
        return {"block": block}

    async def refuse_joins_to_blocked_rooms(self, template: EventTemplate) -> None:
        """A RoomEventSender check: no one joins, is invited to or knocks on a blocked room."""
        if template.type != MEMBER or template.room_id is None:
            return
        if template.content.get("membership") in ALLOWED_IN_BLOCKED_ROOMS:
            return
        await self.refuse_blocked_room(template.room_id)

    async def refuse_blocked_room(self, room_id: str) -> None:
        """403 if the room is blocked, whether this server still has the room or not."""
        if await self._store.is_blocked(room_id):
            raise MatrixError(403, "M_FORBIDDEN", "This room has been blocked on this server")
