"""Holding remote servers to a room's server ACL (spec: server-server-api "Server Access
Control Lists (ACLs)"): endpoints scoped to a room call `check` before anything else, and a
denied server gets 403 M_FORBIDDEN."""

from __future__ import annotations

from ranvier.errors import MatrixError
from ranvier.protocol.server_acl import SERVER_ACL, server_allowed
from ranvier.services.rooms.room_access import RoomAccess
from ranvier.services.rooms.sender import RoomNotFound


class ServerAclChecker:
    def __init__(self, access: RoomAccess) -> None:
        self._access = access

    async def allows(self, server_name: str, room_id: str) -> bool:
        """Whether the room's current ACL lets `server_name` in; a room this server does
        not know has no ACL here (the endpoint answers for the unknown room itself)."""
        try:
            acl = await self._access.current_state_event(room_id, SERVER_ACL)
        except RoomNotFound:
            return True
        return server_allowed(None if acl is None else acl.content, server_name)

    async def check(self, server_name: str, room_id: str) -> None:
        """403 M_FORBIDDEN if the room's server ACL denies `server_name`."""
        if not await self.allows(server_name, room_id):
            raise MatrixError(403, "M_FORBIDDEN", "Server is banned from this room by its ACL")
