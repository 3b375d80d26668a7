"""Joining rooms, the resident server's second step: spec server-server-api "Joining Rooms"
(joins-v2.yaml PUT /send_join, and joins-v1.yaml with its `[200, {...}]` answer)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.services.federation.send_join import SendJoinService


class SendJoinEndpoints:
    def __init__(self, auth: FederationAuthenticator, joins: SendJoinService) -> None:
        self._auth = auth
        self._joins = joins

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/_matrix/federation/v2/send_join/{roomId}/{eventId}", self.send_join_v2),
            web.put("/_matrix/federation/v1/send_join/{roomId}/{eventId}", self.send_join_v1),
        ]

    async def send_join_v2(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}"""
        origin = await self._auth.authenticate(request)
        answer = await self._joins.send_join(
            origin.server_name,
            request.match_info["roomId"],
            request.match_info["eventId"],
            await read_json_object(request),
        )
        return json_response(answer)

    async def send_join_v1(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}"""
        origin = await self._auth.authenticate(request)
        answer = await self._joins.send_join(
            origin.server_name,
            request.match_info["roomId"],
            request.match_info["eventId"],
            await read_json_object(request),
        )
        # spec: joins-v1.yaml - the v1 answer carries only state, auth_chain and origin
        v1 = {key: answer[key] for key in ("origin", "state", "auth_chain")}
        return json_response([200, v1])
