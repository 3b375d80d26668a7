"""Suspended accounts (MSC3823, spec v1.18 "Account suspension") and the account moderation
an admin does: suspending and locking.

A suspended user keeps their session and can read, but may send nothing into rooms except
what undoes harm: leaving (and removing others, as Synapse allows `leave` events) and
redacting their own events. They cannot join, knock, invite, create rooms or change their
profile. Every rule of that list lives here: the room sender calls `check_send` for each
event before building it, and the profile service calls `check_profile_change`.

A locked user cannot use their sessions at all (401 M_USER_LOCKED, api/authentication.py).
"""

from __future__ import annotations

from typing import Literal

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage.users import User, UserStore

MEMBER = "m.room.member"
REDACTION = "m.room.redaction"


def suspended(error: str) -> MatrixError:
    return MatrixError(403, "M_USER_SUSPENDED", error)


# the flags the spec's account moderation endpoints set (/_matrix/client/v1/admin/{flag}/...)
Flag = Literal["suspended", "locked"]


def user_not_found() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "User not found")


class Suspensions:
    def __init__(self, users: UserStore, loader: EventLoader, server_name: str) -> None:
        self._users = users
        self._loader = loader
        self._server_name = server_name

    async def is_suspended(self, user_id: str) -> bool:
        user = await self._users.get_user(user_id)
        return user is not None and user.suspended

    async def check_send(self, template: EventTemplate) -> None:
        """A RoomEventSender check, for every event a local user sends (createRoom's
        create event included)."""
        if not await self.is_suspended(template.sender):
            return
        if template.type == MEMBER:
            if template.content.get("membership") != "leave":
                raise suspended("Changing membership while account is suspended is not allowed")
            return
        if template.type == REDACTION:
            redacts = template.redacts or template.content.get("redacts")
            target = await self._loader.get_event(redacts) if isinstance(redacts, str) else None
            if target is not None and target.sender != template.sender:
                raise suspended("You can only redact your own events while account is suspended")
            return
        raise suspended("Sending messages while account is suspended is not allowed")

    async def check_profile_change(self, user_id: str) -> None:
        """Before `user_id` changes a profile (their own, or another's as an admin)."""
        if await self.is_suspended(user_id):
            raise suspended("Updating profile while account is suspended is not allowed")

    # -- admin: suspending and locking --------------------------------------------------

    def _require_local(self, user_id: str, errcode: str, error: str) -> None:
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, errcode, f"{user_id!r} is not a valid user ID")
        if server != self._server_name:
            raise MatrixError(400, errcode, error)

    async def set_suspended_by_synapse_admin(self, user_id: str, suspend: bool) -> None:
        """PUT /_synapse/admin/v1/suspend/{user_id}, with Synapse's answers (no refusal for
        admins or oneself there)."""
        self._require_local(user_id, "M_UNKNOWN", "Can only suspend local users")
        if await self._users.get_user(user_id) is None:
            raise user_not_found()
        await self._users.set_suspended(user_id, suspend)

    async def _moderated(self, requester_id: str, user_id: str) -> User:
        """The target of the spec's moderation endpoints (the caller is an admin, checked
        before any lookup so they reveal no accounts)."""
        self._require_local(user_id, "M_INVALID_PARAM", "User does not belong to the local server")
        user = await self._users.get_user(user_id)
        if user is None or user.deactivated:
            raise user_not_found()
        if user.admin and user_id != requester_id:
            raise MatrixError(403, "M_FORBIDDEN", "The target user is a server administrator")
        return user

    async def moderation_status(self, requester_id: str, user_id: str, flag: Flag) -> bool:
        """GET /_matrix/client/v1/admin/{suspend,lock}/{userId}"""
        user = await self._moderated(requester_id, user_id)
        return user.suspended if flag == "suspended" else user.locked

    async def set_moderation(
        self, requester_id: str, user_id: str, flag: Flag, value: bool
    ) -> None:
        """PUT /_matrix/client/v1/admin/{suspend,lock}/{userId}"""
        await self._moderated(requester_id, user_id)
        if user_id == requester_id:
            raise MatrixError(403, "M_FORBIDDEN", "You cannot suspend or lock your own account")
        if flag == "suspended":
            await self._users.set_suspended(user_id, value)
        else:
            await self._users.set_locked(user_id, value)
