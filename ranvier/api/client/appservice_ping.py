"""Pinging an application service: spec client-server-api (appservice_ping.yaml)."""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.appservice.ping import AppServicePing


class _PingBody(RequestBody):
    transaction_id: StrictStr | None = None


class AppServicePingEndpoints:
    def __init__(self, auth: RequestAuthenticator, ping: AppServicePing) -> None:
        self._auth = auth
        self._ping = ping

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_matrix/client/v1/appservice/{appserviceId}/ping", self.ping),
            # MSC2659's path, which bridges call on servers older than spec v1.7
            web.post(
                "/_matrix/client/unstable/fi.mau.msc2659/appservice/{appserviceId}/ping",
                self.ping,
            ),
        ]

    async def ping(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v1/appservice/{appserviceId}/ping"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _PingBody)
        duration_ms = await self._ping.ping(
            requester, request.match_info["appserviceId"], body.transaction_id
        )
        return json_response({"duration_ms": duration_ms})
