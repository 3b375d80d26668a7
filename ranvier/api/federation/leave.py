"""Leaving rooms and rejecting invites, the resident server's side: spec server-server-api
"Leaving Rooms (Rejecting Invites)" (leaving-v1.yaml, leaving-v2.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.services.federation.memberships import MakeMembershipService


class LeaveEndpoints:
    def __init__(self, auth: FederationAuthenticator, memberships: MakeMembershipService) -> None:
        self._auth = auth
        self._memberships = memberships

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_matrix/federation/v1/make_leave/{roomId}/{userId}", self.make_leave),
            web.put("/_matrix/federation/v2/send_leave/{roomId}/{eventId}", self.send_leave_v2),
            web.put("/_matrix/federation/v1/send_leave/{roomId}/{eventId}", self.send_leave_v1),
        ]

    async def make_leave(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/make_leave/{roomId}/{userId}"""
        origin = await self._auth.authenticate(request)
        return json_response(
            await self._memberships.make_leave(
                origin.server_name, request.match_info["roomId"], request.match_info["userId"]
            )
        )

    async def send_leave_v2(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}"""
        await self._send_leave(request)
        return json_response({})

    async def send_leave_v1(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}"""
        await self._send_leave(request)
        # spec: leaving-v1.yaml - the v1 answer is [200, {}]
        return json_response([200, {}])

    async def _send_leave(self, request: web.Request) -> None:
        origin = await self._auth.authenticate(request)
        await self._memberships.send_leave(
            origin.server_name,
            request.match_info["roomId"],
            request.match_info["eventId"],
            await read_json_object(request),
        )
