"""The admin API's single sign-on lookup: which user an identity at a provider belongs to
(Synapse's /_synapse/admin/v1/auth_providers/{provider}/users/{external_id})."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.services.sso.external_ids import ExternalIds

ADMIN = "/_synapse/admin"


class ExternalIdEndpoints:
    def __init__(self, auth: RequestAuthenticator, external_ids: ExternalIds) -> None:
        self._auth = auth
        self._external_ids = external_ids

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                ADMIN + "/v1/auth_providers/{provider}/users/{external_id}",
                self.user_by_external_id,
            )
        ]

    async def user_by_external_id(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/auth_providers/{provider}/users/{external_id}"""
        await self._auth.require_admin(request)
        user_id = await self._external_ids.user_for(
            request.match_info["provider"], request.match_info["external_id"]
        )
        return json_response({"user_id": user_id})
