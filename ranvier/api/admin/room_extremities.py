"""Synapse's forward extremities admin API (docs/admin_api/rooms: "Forward Extremities
Admin API")."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.services.rooms.admin_extremities import RoomExtremitiesAdmin

ADMIN = "/_synapse/admin"


class ForwardExtremityEndpoints:
    def __init__(self, auth: RequestAuthenticator, extremities: RoomExtremitiesAdmin) -> None:
        self._auth = auth
        self._extremities = extremities

    def routes(self) -> list[web.RouteDef]:
        path = ADMIN + "/v1/rooms/{room_id_or_alias}/forward_extremities"
        return [web.get(path, self.list_extremities), web.delete(path, self.delete)]

    async def list_extremities(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{room_id_or_alias}/forward_extremities"""
        await self._auth.require_admin(request)
        body = await self._extremities.list_extremities(request.match_info["room_id_or_alias"])
        return json_response(body)

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/rooms/{room_id_or_alias}/forward_extremities"""
        await self._auth.require_admin(request)
        body = await self._extremities.delete(request.match_info["room_id_or_alias"])
        return json_response(body)
