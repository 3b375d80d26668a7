"""OpenID userinfo: spec server-server-api "OpenID" (openid.yaml). Served on listeners with
the `federation` or `openid` resource; unauthenticated, as only the token proves anything."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.http.json import json_response
from ranvier.services.openid import OpenIdService


class OpenIdUserInfoEndpoints:
    def __init__(self, openid: OpenIdService) -> None:
        self._openid = openid

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_matrix/federation/v1/openid/userinfo", self.get_userinfo)]

    async def get_userinfo(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/openid/userinfo"""
        token = request.query.get("access_token")
        if token is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "Access token required")
        return json_response({"sub": await self._openid.user_for_token(token)})
