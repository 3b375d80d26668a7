"""Filters: spec client-server-api "Filtering" (filter.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.services.filters import FilterService

PREFIX = "/_matrix/client/v3/user/{userId}/filter"


class FilterEndpoints:
    def __init__(self, auth: RequestAuthenticator, filters: FilterService) -> None:
        self._auth = auth
        self._filters = filters

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(PREFIX, self.create),
            web.get(PREFIX + "/{filterId}", self.get),
        ]

    async def create(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/user/{userId}/filter"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        filter_id = await self._filters.create(
            requester.user_id, request.match_info["userId"], body
        )
        return json_response({"filter_id": filter_id})

    async def get(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
        requester = await self._auth.require_user(request)
        body = await self._filters.get(
            requester.user_id, request.match_info["userId"], request.match_info["filterId"]
        )
        return json_response(body)
