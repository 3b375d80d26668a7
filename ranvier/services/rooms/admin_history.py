"""A room's history as the server admin sees it (Synapse's room admin API "Room Timestamp
to Event"): what this server holds, whether or not the admin is in the room, without
asking other servers."""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import events as event_store


class RoomHistoryAdmin:
    def __init__(self, membership: MembershipService, sender: RoomEventSender) -> None:
        self._membership = membership
        self._sender = sender

    async def timestamp_to_event(
        self, room_id_or_alias: str, ts: int, *, forwards: bool
    ) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{room_id}/timestamp_to_event"""
        room_id = await self._membership.resolve_room(room_id_or_alias)
        found = await event_store.event_closest_to_ts(
            self._sender.db, room_id, ts, forwards=forwards
        )
        if found is None:
            direction = "after" if forwards else "before"
            raise MatrixError(
                404, "M_NOT_FOUND", f"Unable to find event from {ts} in direction {direction}"
            )
        return {"event_id": found[0], "origin_server_ts": found[1]}
