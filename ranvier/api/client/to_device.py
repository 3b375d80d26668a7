"""Send-to-device messaging: spec client-server-api "Send-to-Device messaging"
(to_device.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.services.to_device import ToDeviceService, parse_messages


class ToDeviceEndpoints:
    def __init__(self, auth: RequestAuthenticator, to_device: ToDeviceService) -> None:
        self._auth = auth
        self._to_device = to_device

    def routes(self) -> list[web.RouteDef]:
        return [web.put("/_matrix/client/v3/sendToDevice/{eventType}/{txnId}", self.send)]

    async def send(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        messages = parse_messages(await read_json_object(request))
        match = request.match_info
        await self._to_device.send(
            requester.user_id, requester.device_id, match["eventType"], match["txnId"], messages
        )
        return json_response({})
