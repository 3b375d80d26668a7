"""A server admin putting local users into rooms (Synapse's "Join a room" and "Make Room
Admin" admin APIs): the server acts through the room's own members, so every event is one
the room's auth rules accept from them.
"""

from __future__ import annotations

import math
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import PowerLevels
from ranvier.requester import UserRequester
from ranvier.services.rooms.errors import as_matrix_error
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import state as state_store
from ranvier.storage.users import UserStore

POWER_LEVELS = "m.room.power_levels"
PUBLIC_JOIN_RULES = frozenset({"public"})


def _acting_as(user_id: str) -> UserRequester:
    # the server acts for its users here; no token, device or rate limit is involved
    return UserRequester(
        user_id=user_id, device_id=None, is_guest=False, is_admin=False, access_token_id=None
    )


class RoomAdminMembership:
    def __init__(
        self,
        server_name: str,
        users: UserStore,
        membership: MembershipService,
        sender: RoomEventSender,
    ) -> None:
        self._server_name = server_name
        self._users = users
        self._membership = membership
        self._sender = sender

    async def _local_user(self, user_id: str) -> None:
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")
        if server != self._server_name:
            raise MatrixError(
                400, "M_INVALID_PARAM", "This endpoint can only be used with local users"
            )
        user = await self._users.get_user(user_id)
        if user is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")
        if user.deactivated:
            raise MatrixError(400, "M_INVALID_PARAM", "The user is deactivated")

    async def _state_event(self, room_id: str, event_type: str) -> Event | None:
        head = await self._sender.head(room_id)
        event_id = head.state.get((event_type, ""))
        return None if event_id is None else await self._sender.loader.get_event(event_id)

    async def _is_public(self, room_id: str) -> bool:
        join_rules = await self._state_event(room_id, "m.room.join_rules")
        return join_rules is not None and join_rules.content.get("join_rule") in PUBLIC_JOIN_RULES

    async def join(self, admin_id: str, user_id: str, room_id_or_alias: str) -> str:
        """POST /_synapse/admin/v1/join/{roomIdOrAlias}: a public room is joined as the user;
        any other needs the admin in it, able to invite, and the admin invites first."""
        await self._local_user(user_id)
        room_id = await self._membership.resolve_room(room_id_or_alias)
        if not await self._is_public(room_id):
            members = await state_store.get_members(self._sender.db, room_id, ("join", "invite"))
            if user_id not in members:
                if members.get(admin_id) != "join":
                    raise MatrixError(
                        403, "M_FORBIDDEN", "The room is not public and you are not in it"
                    )
                await self._membership.invite(_acting_as(admin_id), room_id, user_id)
        await self._membership.join(_acting_as(user_id), room_id)
        return room_id

    async def make_room_admin(self, user_id: str, room_id_or_alias: str) -> None:
        """POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin: the local member
        with the most power who may change the power levels gives `user_id` that power (and
        invites them to a room that is not public)."""
        await self._local_user(user_id)
        room_id = await self._membership.resolve_room(room_id_or_alias)
        head = await self._sender.head(room_id)
        loaded = await self._sender.loader.get_events(
            [
                event_id
                for key, event_id in head.state.items()
                if key in (("m.room.create", ""), (POWER_LEVELS, ""))
            ]
        )
        create = next((e for e in loaded.values() if e.type == "m.room.create"), None)
        current = next((e for e in loaded.values() if e.type == POWER_LEVELS), None)
        levels = PowerLevels.from_events(head.room_version, create, current)
        joined = await state_store.get_members(self._sender.db, room_id)
        local = [m for m in joined if m.rpartition(":")[2] == self._server_name]
        needed = levels.send_level(POWER_LEVELS, is_state=True)
        able = [m for m in local if levels.user_level(m) >= needed]
        if not able:
            raise MatrixError(400, "M_UNKNOWN", "No local admin user in room")
        # the most powerful first; ties by user ID, so the choice is the same every time
        grantor = sorted(able, key=lambda m: (-levels.user_level(m), m))[0]
        grantor_level = levels.user_level(grantor)
        if levels.user_level(user_id) < grantor_level:
            # a room creator's power (v12) is not a number to copy: give the highest
            # level anyone holds, at least 100
            level = (
                int(grantor_level)
                if not math.isinf(grantor_level)
                else max([100, *levels.users.values()])
            )
            content: dict[str, Any] = dict(current.content) if current is not None else {}
            users = dict(content.get("users") or {})
            users[user_id] = level
            content["users"] = users
            await self._send(EventTemplate(POWER_LEVELS, grantor, content, room_id, ""))
        if user_id not in joined and not await self._is_public(room_id):
            members = await state_store.get_members(self._sender.db, room_id, ("invite",))
            if user_id not in members:
                await self._membership.invite(_acting_as(grantor), room_id, user_id)

    async def _send(self, template: EventTemplate) -> None:
        try:
            await self._sender.send(template)
        except Exception as exc:
            error = as_matrix_error(exc)
            if error is None:
                raise
            raise error from None
