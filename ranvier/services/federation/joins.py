"""The resident server's side of the join handshake (spec: server-server-api "Joining
Rooms"): make_join hands a joining server the template of its join event.

The template is what this server would send for the user now (services/rooms/sender.py
`build_template`): the room's extremities as prev_events, the auth events the room version
selects, and the auth rules checked, so that a join the room's rules refuse is refused here
rather than after the joining server has signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.rooms.membership import AUTHORISING_USER, MembershipService
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

# spec: joins-v1.yaml - `ver` defaults to ["1"]
DEFAULT_SUPPORTED_VERSIONS = ("1",)


def _domain(user_id: str) -> str:
    return user_id.partition(":")[2]


class MakeJoinService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        membership: MembershipService,
        acl: ServerAclChecker,
        server_name: str,
    ) -> None:
        self._db = db
        self._sender = sender
        self._membership = membership
        self._acl = acl
        self._server_name = server_name

    async def make_join(
        self, origin: str, room_id: str, user_id: str, supported_versions: Sequence[str]
    ) -> dict[str, Any]:
        """GET /_matrix/federation/v1/make_join/{roomId}/{userId}, asked by `origin`."""
        # as Synapse: the ACL first, so a denied server learns nothing about the room
        await self._acl.check(origin, room_id)
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        version = head.room_version.identifier
        if version not in (supported_versions or DEFAULT_SUPPORTED_VERSIONS):
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"The room has version {version}, which your server did not say it supports",
                room_version=version,
            )
        if not user_id.startswith("@") or _domain(user_id) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"{user_id} is not a user of {origin}")
        if not await self._has_local_member(room_id):
            # spec: the joining server should try another resident; this one has left
            raise MatrixError(404, "M_NOT_FOUND", "This server is no longer in the room")
        content: dict[str, Any] = {"membership": "join"}
        # spec: "Restricted rooms" - a member of this server vouches for the join, as for
        # a local user's; the send_join must then come back here, where it can be signed
        authoriser = await self._membership.join_authoriser(room_id, user_id)
        if authoriser is not None:
            content[AUTHORISING_USER] = authoriser
        template = EventTemplate("m.room.member", user_id, content, room_id, user_id)
        try:
            room_version, pdu = await self._sender.build_template(template)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        except AuthError as exc:
            raise MatrixError(
                403, "M_FORBIDDEN", f"You cannot join this room: {exc.reason}"
            ) from None
        # spec: joins-v1.yaml - the template names the resident server as origin
        pdu["origin"] = self._server_name
        return {"event": pdu, "room_version": room_version.identifier}

    async def _has_local_member(self, room_id: str) -> bool:
        members = await state_store.get_members(self._db, room_id)
        return any(_domain(member) == self._server_name for member in members)
