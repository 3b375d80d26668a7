"""Synapse's admin APIs that put a local user into a room: "Join a room"
(docs/admin_api/room_membership) and "Make Room Admin" (docs/admin_api/rooms)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object, validate_body
from ranvier.services.rooms.admin_membership import RoomAdminMembership

ADMIN = "/_synapse/admin"


class _JoinBody(RequestBody):
    user_id: StrictStr


class _MakeAdminBody(RequestBody):
    # absent: the admin making the request
    user_id: StrictStr | None = None


async def _optional_object(request: web.Request) -> dict[str, Any]:
    if not await request.read():
        return {}
    return await read_json_object(request)


class RoomMembershipAdminEndpoints:
    def __init__(self, auth: RequestAuthenticator, membership: RoomAdminMembership) -> None:
        self._auth = auth
        self._membership = membership

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ADMIN + "/v1/join/{room_id_or_alias}", self.join),
            web.post(ADMIN + "/v1/rooms/{room_id_or_alias}/make_room_admin", self.make_room_admin),
        ]

    async def join(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/join/{room_id_or_alias}"""
        requester = await self._auth.require_admin(request)
        body = await read_body(request, _JoinBody)
        room_id = await self._membership.join(
            requester.user_id, body.user_id, request.match_info["room_id_or_alias"]
        )
        return json_response({"room_id": room_id})

    async def make_room_admin(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/rooms/{room_id_or_alias}/make_room_admin"""
        requester = await self._auth.require_admin(request)
        body = validate_body(await _optional_object(request), _MakeAdminBody)
        await self._membership.make_room_admin(
            body.user_id or requester.user_id, request.match_info["room_id_or_alias"]
        )
        return json_response({})
