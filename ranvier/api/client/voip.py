"""Voice over IP: spec voip.yaml."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.http.json import json_response
from ranvier.services.turn import turn_server


class VoipEndpoints:
    def __init__(self, auth: RequestAuthenticator, config: HomeserverConfig) -> None:
        self._auth = auth
        self._config = config

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_matrix/client/v3/voip/turnServer", self.get_turn_server)]

    async def get_turn_server(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/voip/turnServer"""
        requester = await self._auth.require_user(
            request, allow_guest=self._config.turn_allow_guests
        )
        return json_response(turn_server(self._config, requester.user_id, now_ms()))
