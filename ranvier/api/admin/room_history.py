"""Synapse's room admin API "Room Timestamp to Event" (docs/admin_api/rooms)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import parse_int_param, query_choice, required_query_string
from ranvier.services.rooms.admin_history import RoomHistoryAdmin

ADMIN = "/_synapse/admin"


class RoomHistoryAdminEndpoints:
    def __init__(self, auth: RequestAuthenticator, history: RoomHistoryAdmin) -> None:
        self._auth = auth
        self._history = history

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                ADMIN + "/v1/rooms/{room_id_or_alias}/timestamp_to_event", self.timestamp_to_event
            )
        ]

    async def timestamp_to_event(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{room_id_or_alias}/timestamp_to_event"""
        await self._auth.require_admin(request)
        ts = parse_int_param("ts", required_query_string(request, "ts"), minimum=0)
        forwards = query_choice(request, "dir", "f", ("f", "b")) == "f"
        body = await self._history.timestamp_to_event(
            request.match_info["room_id_or_alias"], ts, forwards=forwards
        )
        return json_response(body)
