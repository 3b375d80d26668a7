"""OpenID: spec client-server-api openid.yaml."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import json_response, read_json_object
from ranvier.services.openid import OpenIdService


class OpenIdEndpoints:
    def __init__(self, auth: RequestAuthenticator, openid: OpenIdService, server_name: str) -> None:
        self._auth = auth
        self._openid = openid
        self._server_name = server_name

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_matrix/client/v3/user/{userId}/openid/request_token", self.request_token)
        ]

    async def request_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/user/{userId}/openid/request_token"""
        requester = await self._auth.require_user(request)
        if request.match_info["userId"] != requester.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "Cannot request tokens for other users")
        # spec: the body is an empty object; anything else is still a JSON object or 400
        await read_json_object(request)
        token = await self._openid.request_token(requester.user_id)
        return json_response(
            {
                "access_token": token.access_token,
                "token_type": "Bearer",
                "matrix_server_name": self._server_name,
                "expires_in": token.expires_in_ms // 1000,
            }
        )
