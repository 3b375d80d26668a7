"""Send-to-device messaging: spec client-server-api "Send-to-Device messaging"
(to_device.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.to_device import ToDeviceService


class _SendBody(RequestBody):
    # user ID -> device ID or "*" -> the message's content
    messages: dict[str, dict[str, dict[str, Any]]]


class ToDeviceEndpoints:
    def __init__(self, auth: RequestAuthenticator, to_device: ToDeviceService) -> None:
        self._auth = auth
        self._to_device = to_device

    def routes(self) -> list[web.RouteDef]:
        return [web.put("/_matrix/client/v3/sendToDevice/{eventType}/{txnId}", self.send)]

    async def send(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        messages = (await read_body(request, _SendBody)).messages
        match = request.match_info
        await self._to_device.send(
            requester.user_id, requester.device_id, match["eventType"], match["txnId"], messages
        )
        return json_response({})
