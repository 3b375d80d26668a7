"""Synapse's "Check username availability" admin API: as the client API's
/register/available, for an admin, whether or not registration is open."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import required_query_string
from ranvier.services.accounts import AccountService

ADMIN = "/_synapse/admin"


class UsernameAvailableEndpoints:
    def __init__(self, auth: RequestAuthenticator, accounts: AccountService) -> None:
        self._auth = auth
        self._accounts = accounts

    def routes(self) -> list[web.RouteDef]:
        return [web.get(ADMIN + "/v1/username_available", self.available)]

    async def available(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/username_available"""
        await self._auth.require_admin(request)
        await self._accounts.check_available(required_query_string(request, "username"))
        return json_response({"available": True})
