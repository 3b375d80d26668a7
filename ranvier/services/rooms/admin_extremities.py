"""A room's forward extremities for the server admin (Synapse's "Forward Extremities" admin
API). Many extremities make every new event name many parents and every state lookup
resolve many states; dropping all but the newest lets the room build on one line again."""

from __future__ import annotations

from typing import Any

from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage.forward_extremities import ForwardExtremityQueries


class RoomExtremitiesAdmin:
    def __init__(
        self,
        queries: ForwardExtremityQueries,
        membership: MembershipService,
        sender: RoomEventSender,
    ) -> None:
        self._queries = queries
        self._membership = membership
        self._sender = sender

    async def list_extremities(self, room_id_or_alias: str) -> dict[str, Any]:
        room_id = await self._membership.resolve_room(room_id_or_alias)
        extremities = await self._queries.extremities(room_id)
        return {
            "count": len(extremities),
            "results": [
                {
                    "event_id": e.event_id,
                    "state_group": e.state_group,
                    "depth": e.depth,
                    "received_ts": e.received_ts,
                }
                for e in extremities
            ],
        }

    async def delete(self, room_id_or_alias: str) -> dict[str, Any]:
        room_id = await self._membership.resolve_room(room_id_or_alias)
        deleted = await self._queries.delete_all_but_newest(room_id)
        if deleted:
            # the room's head in memory still names the dropped extremities: read it anew
            self._sender.forget_room(room_id)
        return {"deleted": deleted}
