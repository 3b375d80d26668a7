"""Room upgrades: spec client-server-api "Room Upgrades", room_upgrades.yaml."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.rooms.upgrade import RoomUpgradeService

CLIENT = "/_matrix/client/v3"


class _UpgradeBody(RequestBody):
    new_version: str
    additional_creators: list[str] | None = None


class RoomUpgradeEndpoints:
    def __init__(self, auth: RequestAuthenticator, upgrades: RoomUpgradeService) -> None:
        self._auth = auth
        self._upgrades = upgrades

    def routes(self) -> list[web.RouteDef]:
        return [web.post(CLIENT + "/rooms/{roomId}/upgrade", self.upgrade)]

    async def upgrade(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/upgrade"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _UpgradeBody)
        new_room_id = await self._upgrades.upgrade(
            requester, request.match_info["roomId"], body.new_version, body.additional_creators
        )
        return json_response({"replacement_room": new_room_id})
