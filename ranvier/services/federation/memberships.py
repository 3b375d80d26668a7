"""The resident server's side of leaving and knocking (spec: server-server-api "Leaving
Rooms (Rejecting Invites)" and "Knocking upon a room"; leaving-v1/v2.yaml, knocks.yaml):
make_leave and make_knock hand the remote server a template, as make_join does
(services/federation/joins.py), built by the room sender's `build_template` so that a
membership the room's rules refuse is refused before the other server signs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.room_versions import RoomVersion
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound

# spec: knocks.yaml - `ver` is required; as for make_join, none means ["1"]
DEFAULT_SUPPORTED_VERSIONS = ("1",)


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


class MakeMembershipService:
    def __init__(self, sender: RoomEventSender, acl: ServerAclChecker, server_name: str) -> None:
        self._sender = sender
        self._acl = acl
        self._server_name = server_name

    async def make_leave(self, origin: str, room_id: str, user_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/make_leave/{roomId}/{userId}, asked by `origin`."""
        await self._acl.check(origin, room_id)
        await self._room_version(room_id)
        self._check_user(origin, user_id)
        version, pdu = await self._template(room_id, user_id, "leave", "You cannot leave this room")
        return {"event": pdu, "room_version": version.identifier}

    async def make_knock(
        self, origin: str, room_id: str, user_id: str, supported_versions: Sequence[str]
    ) -> dict[str, Any]:
        """GET /_matrix/federation/v1/make_knock/{roomId}/{userId}, asked by `origin`."""
        await self._acl.check(origin, room_id)
        version = await self._room_version(room_id)
        if version.identifier not in (supported_versions or DEFAULT_SUPPORTED_VERSIONS):
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"The room has version {version.identifier}, which your server did not say "
                "it supports",
                room_version=version.identifier,
            )
        if not version.knock_join_rule:
            # as Synapse: the room's version has no knocking at all
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                f"Room version {version.identifier} does not support knocking",
            )
        self._check_user(origin, user_id)
        version, pdu = await self._template(
            room_id, user_id, "knock", "You are not permitted to knock on this room"
        )
        return {"event": pdu, "room_version": version.identifier}

    async def _room_version(self, room_id: str) -> RoomVersion:
        try:
            return (await self._sender.head(room_id)).room_version
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None

    def _check_user(self, origin: str, user_id: str) -> None:
        if not user_id.startswith("@") or _domain(user_id) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"{user_id} is not a user of {origin}")

    async def _template(
        self, room_id: str, user_id: str, membership: str, refusal: str
    ) -> tuple[RoomVersion, dict[str, Any]]:
        template = EventTemplate(
            "m.room.member", user_id, {"membership": membership}, room_id, user_id
        )
        try:
            version, pdu = await self._sender.build_template(template)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        except AuthError as exc:
            raise MatrixError(403, "M_FORBIDDEN", f"{refusal}: {exc.reason}") from None
        # spec: the template names the resident server as origin
        pdu["origin"] = self._server_name
        return version, pdu
