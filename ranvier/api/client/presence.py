"""Presence: spec client-server-api "Presence" (presence.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.body import optional_str, required_str
from ranvier.http.json import json_response, read_json_object
from ranvier.services.presence import PresenceService

STATUS = "/_matrix/client/v3/presence/{userId}/status"


class PresenceEndpoints:
    def __init__(self, auth: RequestAuthenticator, presence: PresenceService) -> None:
        self._auth = auth
        self._presence = presence

    def routes(self) -> list[web.RouteDef]:
        return [web.get(STATUS, self.get_status), web.put(STATUS, self.set_status)]

    async def get_status(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/presence/{userId}/status"""
        requester = await self._auth.require_user(request)
        content = await self._presence.get_status(requester.user_id, request.match_info["userId"])
        return json_response(content)

    async def set_status(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/presence/{userId}/status"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        await self._presence.set_status(
            requester.user_id,
            request.match_info["userId"],
            required_str(body, "presence"),
            optional_str(body, "status_msg"),
        )
        return json_response({})
