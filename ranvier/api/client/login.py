"""Login, refresh and logout: spec client-server-api "Login" (login.yaml, refresh.yaml,
logout.yaml) and whoami.yaml."""

from __future__ import annotations

from aiohttp import web

from ranvier.http.auth import RequestAuthenticator
from ranvier.http.body import required_str
from ranvier.http.json import json_response, read_json_object
from ranvier.services.login import LoginService

CLIENT = "/_matrix/client/v3"


class LoginEndpoints:
    def __init__(self, auth: RequestAuthenticator, login: LoginService, server_name: str) -> None:
        self._auth = auth
        self._login = login
        self._server_name = server_name

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/login", self.get_login_flows),
            web.post(CLIENT + "/login", self.login),
            web.post(CLIENT + "/refresh", self.refresh),
            web.post(CLIENT + "/logout", self.logout),
            web.post(CLIENT + "/logout/all", self.logout_all),
            web.get(CLIENT + "/account/whoami", self.whoami),
        ]

    async def get_login_flows(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/login"""
        flows = [{"type": login_type} for login_type in self._login.login_types()]
        return json_response({"flows": flows})

    async def login(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/login"""
        body = await read_json_object(request)
        session = await self._login.login(body)
        return json_response(session.response(self._server_name))

    async def refresh(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/refresh"""
        body = await read_json_object(request)
        session = await self._login.refresh(required_str(body, "refresh_token"))
        response: dict[str, object] = {
            "access_token": session.access_token,
            "refresh_token": session.refresh_token,
        }
        if session.expires_in_ms is not None:
            response["expires_in_ms"] = session.expires_in_ms
        return json_response(response)

    async def logout(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/logout"""
        requester = await self._auth.require_user(request, allow_guest=True)
        await self._login.logout(requester.user_id, requester.device_id, requester.access_token_id)
        return json_response({})

    async def logout_all(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/logout/all"""
        requester = await self._auth.require_user(request, allow_guest=True)
        await self._login.logout_all(requester.user_id)
        return json_response({})

    async def whoami(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/account/whoami"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body: dict[str, object] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
        if requester.device_id is not None:
            body["device_id"] = requester.device_id
        return json_response(body)
