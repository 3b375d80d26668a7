"""Dehydrated devices: MSC3814 (unstable prefix org.matrix.msc3814.v1)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.body import optional_str, required_str
from ranvier.http.json import json_response, read_json_object
from ranvier.services.dehydrated_devices import DehydratedDeviceService
from ranvier.services.e2e_keys import parse_upload

UNSTABLE = "/_matrix/client/unstable/org.matrix.msc3814.v1"
DEHYDRATED_DEVICE = UNSTABLE + "/dehydrated_device"


def parse_device_data(body: dict[str, Any]) -> dict[str, Any]:
    device_data = body.get("device_data")
    if device_data is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'device_data'")
    if not isinstance(device_data, dict):
        raise MatrixError(400, "M_BAD_JSON", "'device_data' must be an object")
    # the algorithm tells a client how to rehydrate it; the rest is opaque
    required_str(device_data, "algorithm")
    return device_data


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
        body = await read_json_object(request)
        device_id = required_str(body, "device_id")
        if not device_id:
            raise MatrixError(400, "M_INVALID_PARAM", "'device_id' must not be empty")
        device_data = parse_device_data(body)
        display_name = optional_str(body, "initial_device_display_name")
        upload = parse_upload(body)
        await self._dehydrated.put(requester.user_id, device_id, device_data, display_name, upload)
        return json_response({"device_id": device_id})

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
        body = await read_json_object(request) if request.can_read_body else {}
        page = await self._dehydrated.events(
            requester.user_id, request.match_info["deviceId"], optional_str(body, "next_batch")
        )
        return json_response({"events": page.events, "next_batch": page.next_batch})
