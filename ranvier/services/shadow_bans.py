"""Shadow bans (Synapse's admin API "Controlling whether a user is shadow-banned"): a
shadow-banned user's messages and state changes are answered as if sent, with an event ID,
but go nowhere, so a spammer does not learn they were stopped.

The banned users are few; their IDs are kept in memory, read once and changed here.
"""

from __future__ import annotations

import secrets
from typing import Any

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion
from ranvier.requester import UserRequester
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound
from ranvier.storage.users import UserStore


class ShadowBans:
    def __init__(self, server_name: str, users: UserStore, sender: RoomEventSender) -> None:
        self._server_name = server_name
        self._users = users
        self._sender = sender
        self._banned: set[str] | None = None

    async def is_shadow_banned(self, user_id: str) -> bool:
        if self._banned is None:
            self._banned = await self._users.get_shadow_banned_users()
        return user_id in self._banned

    async def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        """POST (ban) or DELETE (lift) /_synapse/admin/v1/users/{user_id}/shadow_ban"""
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")
        if server != self._server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Only local users can be shadow-banned")
        if await self._users.get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")
        await self._users.set_shadow_banned(user_id, banned)
        if self._banned is None:
            self._banned = await self._users.get_shadow_banned_users()
        if banned:
            self._banned.add(user_id)
        else:
            self._banned.discard(user_id)

    async def intercept(self, requester: UserRequester, template: EventTemplate) -> Event | None:
        """EventSendingService's interceptor: a stand-in for a banned user's send."""
        if not await self.is_shadow_banned(requester.user_id):
            return None
        assert template.room_id is not None
        try:
            head = await self._sender.head(template.room_id)
        except RoomNotFound:
            return None  # refused as for anyone
        return self.unsent_event(template, head.room_version)

    @staticmethod
    def unsent_event(template: EventTemplate, room_version: RoomVersion) -> Event:
        """What the sender is answered with: an event that looks sent and never was. Its ID
        has the shape of a real one so clients keep it as their local echo."""
        pdu: dict[str, Any] = {
            "type": template.type,
            "room_id": template.room_id,
            "sender": template.sender,
            "content": dict(template.content),
            "origin_server_ts": template.origin_server_ts or now_ms(),
        }
        if template.state_key is not None:
            pdu["state_key"] = template.state_key
        event_id = "$" + secrets.token_urlsafe(32).rstrip("=")
        return Event(pdu, room_version, event_id)
