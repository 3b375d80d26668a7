"""Presence: spec client-server-api "Presence" (presence.yaml)."""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.presence import PresenceService

STATUS = "/_matrix/client/v3/presence/{userId}/status"


class _StatusBody(RequestBody):
    # one of the spec's states, which the service checks (sync's set_presence is the
    # other way in)
    presence: StrictStr
    status_msg: StrictStr | None = None


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
        body = await read_body(request, _StatusBody)
        await self._presence.set_status(
            requester.user_id, request.match_info["userId"], body.presence, body.status_msg
        )
        return json_response({})
