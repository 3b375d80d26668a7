"""Knocking upon a room, the resident server's side: spec server-server-api "Knocking upon
a room" (knocks.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.services.federation.memberships import MakeMembershipService


class KnockEndpoints:
    def __init__(self, auth: FederationAuthenticator, memberships: MakeMembershipService) -> None:
        self._auth = auth
        self._memberships = memberships

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_matrix/federation/v1/make_knock/{roomId}/{userId}", self.make_knock),
            web.put("/_matrix/federation/v1/send_knock/{roomId}/{eventId}", self.send_knock),
        ]

    async def make_knock(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/make_knock/{roomId}/{userId}"""
        origin = await self._auth.authenticate(request)
        return json_response(
            await self._memberships.make_knock(
                origin.server_name,
                request.match_info["roomId"],
                request.match_info["userId"],
                request.query.getall("ver", []),
            )
        )

    async def send_knock(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}"""
        origin = await self._auth.authenticate(request)
        return json_response(
            await self._memberships.send_knock(
                origin.server_name,
                request.match_info["roomId"],
                request.match_info["eventId"],
                await read_json_object(request),
            )
        )
