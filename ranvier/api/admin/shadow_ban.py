"""Synapse's shadow-ban admin API (docs/admin_api/user_admin_api: "Controlling whether a
user is shadow-banned")."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.services.shadow_bans import ShadowBans

ADMIN = "/_synapse/admin"


class ShadowBanEndpoints:
    def __init__(self, auth: RequestAuthenticator, shadow_bans: ShadowBans) -> None:
        self._auth = auth
        self._shadow_bans = shadow_bans

    def routes(self) -> list[web.RouteDef]:
        path = ADMIN + "/v1/users/{user_id}/shadow_ban"
        return [web.post(path, self.ban), web.delete(path, self.lift)]

    async def ban(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/users/{user_id}/shadow_ban"""
        await self._auth.require_admin(request)
        await self._shadow_bans.set_shadow_banned(request.match_info["user_id"], True)
        return json_response({})

    async def lift(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/users/{user_id}/shadow_ban"""
        await self._auth.require_admin(request)
        await self._shadow_bans.set_shadow_banned(request.match_info["user_id"], False)
        return json_response({})
