"""Relations and threads: spec client-server-api "Relationships API" (relations.yaml) and
the threading module's "Querying threads in a room" (threads_list.yaml)."""

from __future__ import annotations

from typing import Literal, cast

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import query_bool, query_choice, query_int, query_string
from ranvier.services.rooms.relations import RelationsQuery, RelationsService

CLIENT_V1 = "/_matrix/client/v1"
RELATIONS = CLIENT_V1 + "/rooms/{roomId}/relations/{eventId}"

DEFAULT_LIMIT = 5
# larger requests are answered in pages of this size, with a next_batch
MAX_LIMIT = 100


class RelationEndpoints:
    def __init__(self, auth: RequestAuthenticator, relations: RelationsService) -> None:
        self._auth = auth
        self._relations = relations

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(RELATIONS, self.get_relating_events),
            web.get(RELATIONS + "/{relType}", self.get_relating_events_with_rel_type),
            web.get(
                RELATIONS + "/{relType}/{eventType}",
                self.get_relating_events_with_rel_type_and_event_type,
            ),
            web.get(CLIENT_V1 + "/rooms/{roomId}/threads", self.get_thread_roots),
        ]

    async def get_relating_events(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}"""
        return await self._relating_events(request)

    async def get_relating_events_with_rel_type(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}"""
        return await self._relating_events(request)

    async def get_relating_events_with_rel_type_and_event_type(
        self, request: web.Request
    ) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}"""
        return await self._relating_events(request)

    async def _relating_events(self, request: web.Request) -> web.Response:
        requester = await self._auth.require_user(request, allow_guest=True)
        query = RelationsQuery(
            rel_type=request.match_info.get("relType"),
            event_type=request.match_info.get("eventType"),
            direction=cast(Literal["b", "f"], query_choice(request, "dir", "b", ("b", "f"))),
            from_token=query_string(request, "from"),
            to_token=query_string(request, "to"),
            limit=min(query_int(request, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT),
            recurse=query_bool(request, "recurse"),
        )
        body = await self._relations.get_relations(
            requester, request.match_info["roomId"], request.match_info["eventId"], query
        )
        return json_response(body)

    async def get_thread_roots(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/threads"""
        requester = await self._auth.require_user(request)
        include = query_choice(request, "include", "all", ("all", "participated"))
        body = await self._relations.get_threads(
            requester,
            request.match_info["roomId"],
            include=cast(Literal["all", "participated"], include),
            from_token=query_string(request, "from"),
            # spec: threads_list.yaml - the limit must be greater than zero
            limit=min(query_int(request, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT),
        )
        return json_response(body)
