"""Dehydrated devices: MSC3814 (unstable prefix org.matrix.msc3814.v1)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ConfigDict, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.keys import KeysUploadBody
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.dehydrated_devices import DehydratedDeviceService

UNSTABLE = "/_matrix/client/unstable/org.matrix.msc3814.v1"
DEHYDRATED_DEVICE = UNSTABLE + "/dehydrated_device"


class _DeviceData(RequestBody):
    # opaque to the server and stored whole; the algorithm tells a client how to
    # rehydrate it
    model_config = ConfigDict(extra="allow")

    algorithm: StrictStr


class _PutBody(KeysUploadBody):
    device_id: StrictStr
    device_data: _DeviceData
    initial_device_display_name: StrictStr | None = None
    # a dehydrated device is nothing without its keys
    device_keys: dict[str, Any]


class _EventsBody(RequestBody):
    next_batch: StrictStr | None = None


class DehydratedDeviceEndpoints:
    def __init__(self, auth: RequestAuthenticator, dehydrated: DehydratedDeviceService) -> None:
        self._auth = auth
        self._dehydrated = dehydrated

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put(DEHYDRATED_DEVICE, self.put_device),
            web.get(DEHYDRATED_DEVICE, self.get_device),
            web.delete(DEHYDRATED_DEVICE, self.delete_device),
            web.post(DEHYDRATED_DEVICE + "/{deviceId}/events", self.events),
        ]

    async def put_device(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _PutBody)
        if not body.device_id:
            raise MatrixError(400, "M_INVALID_PARAM", "'device_id' must not be empty")
        await self._dehydrated.put(
            requester.user_id,
            body.device_id,
            body.device_data.model_dump(),
            body.initial_device_display_name,
            body.key_upload(),
        )
        return json_response({"device_id": body.device_id})

    async def get_device(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
        requester = await self._auth.require_user(request)
        device = await self._dehydrated.get(requester.user_id)
        return json_response({"device_id": device.device_id, "device_data": device.device_data})

    async def delete_device(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
        requester = await self._auth.require_user(request)
        device_id = await self._dehydrated.delete(requester.user_id)
        return json_response({"device_id": device_id})

    async def events(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events"""  # noqa: E501
        requester = await self._auth.require_user(request)
        # clients send {} on the first page; tolerate no body at all
        body = await read_body(request, _EventsBody) if request.can_read_body else _EventsBody()
        page = await self._dehydrated.events(
            requester.user_id, request.match_info["deviceId"], body.next_batch
        )
        return json_response({"events": page.events, "next_batch": page.next_batch})
