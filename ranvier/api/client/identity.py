"""Identity-server bindings of the user's third-party identifiers: spec client-server-api
administrative_contact.yaml (POST /account/3pid/bind, POST /account/3pid/unbind)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.identity_server import IdentityServerBindings

ACCOUNT = "/_matrix/client/v3/account"


class _BindBody(RequestBody):
    id_server: str
    id_access_token: str
    sid: str
    client_secret: str


class _UnbindBody(RequestBody):
    medium: Literal["email", "msisdn"]
    address: str
    id_server: str | None = None


class IdentityEndpoints:
    def __init__(self, auth: RequestAuthenticator, bindings: IdentityServerBindings) -> None:
        self._auth = auth
        self._bindings = bindings

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ACCOUNT + "/3pid/bind", self.bind),
            web.post(ACCOUNT + "/3pid/unbind", self.unbind),
        ]

    async def bind(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/bind"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _BindBody)
        await self._bindings.bind(
            requester.user_id, body.id_server, body.id_access_token, body.sid, body.client_secret
        )
        return json_response({})

    async def unbind(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/unbind"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _UnbindBody)
        result = await self._bindings.unbind(
            requester.user_id, body.medium, body.address, body.id_server
        )
        return json_response({"id_server_unbind_result": result})
