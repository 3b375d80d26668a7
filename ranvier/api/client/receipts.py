"""Receipts and read markers: spec client-server-api "Receipts" (receipts.yaml) and "Fully
read markers" (read_markers.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.body import optional_str
from ranvier.http.json import json_response, read_json_object
from ranvier.services.receipts import FULLY_READ, READ, READ_PRIVATE, ReceiptService

ROOM = "/_matrix/client/v3/rooms/{roomId}"


class ReceiptEndpoints:
    def __init__(self, auth: RequestAuthenticator, receipts: ReceiptService) -> None:
        self._auth = auth
        self._receipts = receipts

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ROOM + "/receipt/{receiptType}/{eventId}", self.send_receipt),
            web.post(ROOM + "/read_markers", self.set_read_markers),
        ]

    async def send_receipt(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"""
        requester = await self._auth.require_user(request)
        # spec: the body is required, but clients have long sent none; Synapse accepts that
        body = await read_json_object(request) if await request.read() else {}
        match = request.match_info
        await self._receipts.send_receipt(
            requester.user_id,
            match["roomId"],
            match["receiptType"],
            match["eventId"],
            body.get("thread_id"),
        )
        return json_response({})

    async def set_read_markers(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        await self._receipts.set_read_markers(
            requester.user_id,
            request.match_info["roomId"],
            fully_read=optional_str(body, FULLY_READ),
            read=optional_str(body, READ),
            read_private=optional_str(body, READ_PRIVATE),
        )
        return json_response({})
