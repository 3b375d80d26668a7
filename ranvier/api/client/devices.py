"""Device management: spec client-server-api "Device management" (device_management.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.account import require_same_user
from ranvier.api.client.credentials import user_interactive_auth
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object, validate_body
from ranvier.services.accounts import AccountService
from ranvier.services.devices import DeviceService
from ranvier.services.uia import UserInteractiveAuth
from ranvier.storage.devices import Device

CLIENT = "/_matrix/client/v3"


def render(device: Device) -> dict[str, Any]:
    # spec: the other fields are strings and integers, not nullable: what is unknown (a
    # name never set, a device never seen) is left out
    body: dict[str, Any] = {"device_id": device.device_id}
    if device.display_name is not None:
        body["display_name"] = device.display_name
    if device.last_seen_ip is not None:
        body["last_seen_ip"] = device.last_seen_ip
    if device.last_seen_ts is not None:
        body["last_seen_ts"] = device.last_seen_ts
    return body


class _UpdateBody(RequestBody):
    # absent: nothing changes
    display_name: StrictStr | None = None


class _DeleteDevicesBody(RequestBody):
    devices: list[StrictStr]


def no_such_device() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "No device with this ID")


class DeviceEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        devices: DeviceService,
        accounts: AccountService,
        uia: UserInteractiveAuth,
    ) -> None:
        self._auth = auth
        self._devices = devices
        self._accounts = accounts
        self._uia = uia

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/devices", self.list_devices),
            web.get(CLIENT + "/devices/{deviceId}", self.get_device),
            web.put(CLIENT + "/devices/{deviceId}", self.update_device),
            web.delete(CLIENT + "/devices/{deviceId}", self.delete_device),
            web.post(CLIENT + "/delete_devices", self.delete_devices),
        ]

    async def list_devices(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/devices"""
        requester = await self._auth.require_user(request)
        devices = await self._devices.list_devices(requester.user_id)
        return json_response({"devices": [render(device) for device in devices]})

    async def get_device(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/devices/{deviceId}"""
        requester = await self._auth.require_user(request)
        device = await self._devices.get_device(requester.user_id, request.match_info["deviceId"])
        if device is None:
            raise no_such_device()
        return json_response(render(device))

    async def update_device(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/devices/{deviceId}"""
        requester = await self._auth.require_user(request)
        display_name = (await read_body(request, _UpdateBody)).display_name
        device_id = request.match_info["deviceId"]
        if (
            requester.app_service is not None
            and await self._devices.get_device(requester.user_id, device_id) is None
        ):
            # spec v1.17 "Device management": a service creates its users' devices here
            await self._devices.ensure_device(requester.user_id, device_id, display_name)
            return json_response({}, status=201)
        if display_name is None:
            exists = await self._devices.get_device(requester.user_id, device_id) is not None
        else:
            exists = await self._devices.rename_device(requester.user_id, device_id, display_name)
        if not exists:
            raise no_such_device()
        return json_response({})

    async def delete_device(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/devices/{deviceId}"""
        requester = await self._auth.require_user(request)
        device_id = request.match_info["deviceId"]
        # a body is optional here: the first request of the auth dance may have none
        body = await read_json_object(request) if request.can_read_body else {}
        if await self._devices.get_device(requester.user_id, device_id) is None:
            raise no_such_device()
        if requester.app_service is not None:
            # spec v1.17 "Device management": no user-interactive auth for a service
            await self._devices.delete_devices(requester.user_id, [device_id])
            return json_response({})
        auth = await user_interactive_auth(
            self._uia,
            body,
            await self._accounts.reauth_flows_for(requester.user_id),
            operation=f"DELETE {CLIENT}/devices/{device_id} {requester.user_id}",
        )
        require_same_user(auth, requester)
        await self._devices.delete_devices(requester.user_id, [device_id])
        await self._uia.operation_completed(auth)
        return json_response({})

    async def delete_devices(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/delete_devices"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        device_ids = validate_body(body, _DeleteDevicesBody).devices
        if requester.app_service is not None:
            # spec v1.17 "Device management": no user-interactive auth for a service
            await self._devices.delete_devices(requester.user_id, device_ids)
            return json_response({})
        auth = await user_interactive_auth(
            self._uia,
            body,
            await self._accounts.reauth_flows_for(requester.user_id),
            # the device list is part of the operation: a session that authorised deleting
            # some devices must not delete others
            operation=f"POST {CLIENT}/delete_devices {requester.user_id} {sorted(device_ids)}",
        )
        require_same_user(auth, requester)
        await self._devices.delete_devices(requester.user_id, device_ids)
        await self._uia.operation_completed(auth)
        return json_response({})
