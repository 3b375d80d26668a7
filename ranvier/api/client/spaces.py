"""Spaces and room previews: spec client-server-api "Spaces" (space_hierarchy.yaml) and
room summaries (room_summary.yaml, with the MSC3266 paths Synapse still serves)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import parse_int_param, query_bool, query_string
from ranvier.services.rooms.hierarchy import HierarchyQuery, SpaceHierarchyService

CLIENT_V1 = "/_matrix/client/v1"
NHEKO_SUMMARY = "/_matrix/client/unstable/im.nheko.summary"


class SpaceEndpoints:
    def __init__(self, auth: RequestAuthenticator, spaces: SpaceHierarchyService) -> None:
        self._auth = auth
        self._spaces = spaces

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT_V1 + "/rooms/{roomId}/hierarchy", self.hierarchy),
            web.get(CLIENT_V1 + "/room_summary/{roomIdOrAlias}", self.room_summary),
            # MSC3266's names for it, as Synapse serves them
            web.get(NHEKO_SUMMARY + "/summary/{roomIdOrAlias}", self.room_summary),
            web.get(NHEKO_SUMMARY + "/rooms/{roomIdOrAlias}/summary", self.room_summary),
        ]

    async def hierarchy(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/hierarchy"""
        requester = await self._auth.require_user(request, allow_guest=True)
        limit = query_string(request, "limit")
        max_depth = query_string(request, "max_depth")
        query = HierarchyQuery(
            room_id=request.match_info["roomId"],
            suggested_only=bool(query_bool(request, "suggested_only")),
            max_depth=None
            if max_depth is None
            else parse_int_param("max_depth", max_depth, minimum=0),
            limit=None if limit is None else parse_int_param("limit", limit, minimum=1),
            from_token=query_string(request, "from"),
        )
        return json_response(await self._spaces.hierarchy(requester.user_id, query))

    async def room_summary(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/room_summary/{roomIdOrAlias}"""
        requester = await self._auth.optional_user(request)
        summary = await self._spaces.room_summary(
            requester.user_id if requester is not None else None,
            request.match_info["roomIdOrAlias"],
            request.query.getall("via", []),
        )
        return json_response(summary)
