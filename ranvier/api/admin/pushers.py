"""Synapse's pushers admin API (docs/admin_api/user_admin_api: "List all pushers")."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.services.push.pushers import PusherService

ADMIN = "/_synapse/admin"


class PusherAdminEndpoints:
    def __init__(self, auth: RequestAuthenticator, pushers: PusherService) -> None:
        self._auth = auth
        self._pushers = pushers

    def routes(self) -> list[web.RouteDef]:
        return [web.get(ADMIN + "/v1/users/{userId}/pushers", self.list_pushers)]

    async def list_pushers(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/pushers"""
        await self._auth.require_admin(request)
        body = await self._pushers.admin_get_pushers(request.match_info["userId"])
        return json_response(body)
