"""Synapse's federation admin API: destinations, their backoff and shared rooms."""

from __future__ import annotations

from typing import cast, get_args

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import invalid_param, query_choice, query_int
from ranvier.services.federation.destinations import DestinationAdminService
from ranvier.storage.destinations import DestinationOrder

PREFIX = "/_synapse/admin/v1/federation/destinations"
ORDER_VALUES: tuple[str, ...] = get_args(DestinationOrder)
DEFAULT_LIMIT = 100


def _page(request: web.Request) -> tuple[int, int, bool]:
    start = query_int(request, "from", 0)
    limit = query_int(request, "limit", DEFAULT_LIMIT)
    direction = request.query.get("dir", "f")
    if direction not in ("f", "b"):
        raise invalid_param("Query parameter 'dir' must be one of f, b")
    return start, limit, direction == "b"


class DestinationEndpoints:
    def __init__(self, auth: RequestAuthenticator, destinations: DestinationAdminService) -> None:
        self._auth = auth
        self._destinations = destinations

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.list_destinations),
            web.get(PREFIX + "/{destination}", self.get_destination),
            web.get(PREFIX + "/{destination}/rooms", self.rooms),
            web.post(PREFIX + "/{destination}/reset_connection", self.reset_connection),
        ]

    async def list_destinations(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations"""
        await self._auth.require_admin(request)
        start, limit, descending = _page(request)
        order_by = query_choice(request, "order_by", "destination", ORDER_VALUES)
        body = await self._destinations.list_destinations(
            start=start,
            limit=limit,
            order_by=cast(DestinationOrder, order_by),
            descending=descending,
            name_filter=request.query.get("destination") or None,
        )
        return json_response(body)

    async def get_destination(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}"""
        await self._auth.require_admin(request)
        body = await self._destinations.get_destination(request.match_info["destination"])
        return json_response(body)

    async def rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}/rooms"""
        await self._auth.require_admin(request)
        start, limit, descending = _page(request)
        body = await self._destinations.rooms(
            request.match_info["destination"], start=start, limit=limit, descending=descending
        )
        return json_response(body)

    async def reset_connection(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection"""
        await self._auth.require_admin(request)
        await self._destinations.reset_connection(request.match_info["destination"])
        return json_response({})
