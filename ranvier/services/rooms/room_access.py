"""Who may look at and manage a room's directory entries (aliases, published room list),
read from the room's current state as the event pipeline keeps it."""

from __future__ import annotations

from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import PowerLevels
from ranvier.requester import UserRequester
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound

CANONICAL_ALIAS = "m.room.canonical_alias"


class RoomAccess:
    def __init__(self, sender: RoomEventSender, loader: EventLoader) -> None:
        self._sender = sender
        self._loader = loader

    async def current_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> Event | None:
        """The event in the room's current state; raises RoomNotFound for unknown rooms."""
        head = await self._sender.head(room_id)
        event_id = head.state.get((event_type, state_key))
        return await self._loader.get_event(event_id) if event_id is not None else None

    async def room_exists(self, room_id: str) -> bool:
        try:
            await self._sender.head(room_id)
        except RoomNotFound:
            return False
        return True

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        try:
            member = await self.current_state_event(room_id, "m.room.member", user_id)
        except RoomNotFound:
            return False
        return member is not None and member.membership == "join"

    async def is_world_readable(self, room_id: str) -> bool:
        try:
            event = await self.current_state_event(room_id, "m.room.history_visibility")
        except RoomNotFound:
            return False
        return event is not None and event.content.get("history_visibility") == "world_readable"

    async def can_edit_directory(self, requester: UserRequester, room_id: str) -> bool:
        """Whether the requester may change how the room is listed: a server admin, or a
        joined member with the power to send m.room.canonical_alias (as Synapse decides who
        may publish a room or delete others' aliases)."""
        if requester.is_admin:
            return True
        if not await self.is_joined(room_id, requester.user_id):
            return False
        head = await self._sender.head(room_id)
        create = await self.current_state_event(room_id, "m.room.create")
        power = await self.current_state_event(room_id, "m.room.power_levels")
        levels = PowerLevels.from_events(head.room_version, create, power)
        return levels.user_level(requester.user_id) >= levels.send_level(CANONICAL_ALIAS, True)
