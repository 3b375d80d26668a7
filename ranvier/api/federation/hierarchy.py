"""A space for other servers: spec server-server-api "Spaces" (space_hierarchy.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import query_bool
from ranvier.services.rooms.hierarchy import SpaceHierarchyService


class FederationHierarchyEndpoints:
    def __init__(self, auth: FederationAuthenticator, spaces: SpaceHierarchyService) -> None:
        self._auth = auth
        self._spaces = spaces

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_matrix/federation/v1/hierarchy/{roomId}", self.hierarchy)]

    async def hierarchy(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/hierarchy/{roomId}"""
        origin = await self._auth.authenticate(request)
        answer = await self._spaces.federation_hierarchy(
            origin.server_name,
            request.match_info["roomId"],
            suggested_only=bool(query_bool(request, "suggested_only")),
        )
        return json_response(answer)
