"""Joining rooms, the resident server's first step: spec server-server-api "Joining Rooms"
(joins-v1.yaml, GET /make_join)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import json_response
from ranvier.services.federation.joins import MakeJoinService


class MakeJoinEndpoints:
    def __init__(self, auth: FederationAuthenticator, joins: MakeJoinService) -> None:
        self._auth = auth
        self._joins = joins

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_matrix/federation/v1/make_join/{roomId}/{userId}", self.make_join)]

    async def make_join(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/make_join/{roomId}/{userId}"""
        origin = await self._auth.authenticate(request)
        return json_response(
            await self._joins.make_join(
                origin.server_name,
                request.match_info["roomId"],
                request.match_info["userId"],
                request.query.getall("ver", []),
            )
        )
