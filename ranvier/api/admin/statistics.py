"""Synapse's statistics admin API (docs/admin_api/statistics)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import invalid_param, query_choice, query_int
from ranvier.services.statistics import AdminStatistics
from ranvier.storage.statistics import MEDIA_ORDER_BY_VALUES, UserMediaQuery

ADMIN = "/_synapse/admin"


class StatisticsEndpoints:
    def __init__(self, auth: RequestAuthenticator, statistics: AdminStatistics) -> None:
        self._auth = auth
        self._statistics = statistics

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(ADMIN + "/v1/statistics/users/media", self.users_media),
            web.get(ADMIN + "/v1/statistics/database/rooms", self.largest_rooms),
        ]

    async def users_media(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/statistics/users/media"""
        await self._auth.require_admin(request)
        search_term = request.query.get("search_term")
        if search_term == "":
            raise invalid_param("Query parameter search_term cannot be an empty string.")
        until = request.query.get("until_ts")
        query = UserMediaQuery(
            start=query_int(request, "from", 0),
            limit=query_int(request, "limit", 100),
            from_ts=query_int(request, "from_ts", 0),
            until_ts=None if until is None else query_int(request, "until_ts", 0),
            order_by=query_choice(request, "order_by", "user_id", MEDIA_ORDER_BY_VALUES),  # type: ignore[arg-type]
            backwards=query_choice(request, "dir", "f", ("f", "b")) == "b",
            search_term=search_term,
        )
        return json_response(await self._statistics.users_media(query))

    async def largest_rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/statistics/database/rooms"""
        await self._auth.require_admin(request)
        return json_response(await self._statistics.largest_rooms())
