"""Inviting to a room, the invitee's server: spec server-server-api "Inviting to a room"
(invites-v2.yaml, and invites-v1.yaml for room versions 1 and 2)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object
from ranvier.services.federation.invites import InviteService

# spec: invites-v1.yaml - the v1 API serves room versions 1 and 2; its body names none
V1_ROOM_VERSION = "1"


class InviteV2Body(RequestBody):
    room_version: str
    event: dict[str, Any]
    invite_room_state: list[Any] = []


class InviteEndpoints:
    def __init__(self, auth: FederationAuthenticator, invites: InviteService) -> None:
        self._auth = auth
        self._invites = invites

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/_matrix/federation/v2/invite/{roomId}/{eventId}", self.invite_v2),
            web.put("/_matrix/federation/v1/invite/{roomId}/{eventId}", self.invite_v1),
        ]

    async def invite_v2(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v2/invite/{roomId}/{eventId}"""
        origin = await self._auth.authenticate(request)
        body = await read_body(request, InviteV2Body)
        signed = await self._invites.on_invite(
            origin.server_name,
            request.match_info["roomId"],
            request.match_info["eventId"],
            body.room_version,
            body.event,
            body.invite_room_state,
        )
        return json_response({"event": signed})

    async def invite_v1(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/invite/{roomId}/{eventId}"""
        origin = await self._auth.authenticate(request)
        event = await read_json_object(request)
        unsigned = event.get("unsigned")
        state = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
        signed = await self._invites.on_invite(
            origin.server_name,
            request.match_info["roomId"],
            request.match_info["eventId"],
            V1_ROOM_VERSION,
            event,
            state if isinstance(state, list) else [],
        )
        # spec: invites-v1.yaml - the v1 answer is [200, {"event": ...}]
        return json_response([200, {"event": signed}])
