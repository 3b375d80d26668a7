"""Receipts and read markers: spec client-server-api "Receipts" (receipts.yaml) and "Fully
read markers" (read_markers.yaml)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BeforeValidator, Field, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, invalid_param_error, json_response, read_body
from ranvier.services.receipts import ReceiptService

ROOM = "/_matrix/client/v3/rooms/{roomId}"


def _thread_id(value: object) -> object:
    # spec (receipts.yaml): a thread_id that is not a string, or empty, is M_INVALID_PARAM
    if value is not None and (not isinstance(value, str) or not value):
        raise invalid_param_error("thread_id must be a non-empty string")
    return value


class _ReceiptBody(RequestBody):
    thread_id: Annotated[StrictStr | None, BeforeValidator(_thread_id)] = None


class _ReadMarkersBody(RequestBody):
    fully_read: StrictStr | None = Field(default=None, alias="m.fully_read")
    read: StrictStr | None = Field(default=None, alias="m.read")
    read_private: StrictStr | None = Field(default=None, alias="m.read.private")


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
        body = await read_body(request, _ReceiptBody) if await request.read() else _ReceiptBody()
        match = request.match_info
        await self._receipts.send_receipt(
            requester.user_id,
            match["roomId"],
            match["receiptType"],
            match["eventId"],
            body.thread_id,
        )
        return json_response({})

    async def set_read_markers(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _ReadMarkersBody)
        await self._receipts.set_read_markers(
            requester.user_id,
            request.match_info["roomId"],
            fully_read=body.fully_read,
            read=body.read,
            read_private=body.read_private,
        )
        return json_response({})
