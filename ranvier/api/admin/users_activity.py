"""Synapse's user admin API for a user's devices, sessions, joined rooms and account data
(docs/admin_api/user_admin_api: "User devices", "Login as a user", "List room memberships
of a user", "Account data", "Get the number of invites sent by the user", "Get the
cumulative number of rooms a user has joined")."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import StrictInt, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object, validate_body
from ranvier.http.params import query_int
from ranvier.services.admin_user_activity import AdminUserActivity

ADMIN = "/_synapse/admin"


class _RenameBody(RequestBody):
    display_name: StrictStr | None = None


class _CreateDeviceBody(RequestBody):
    device_id: StrictStr


class _DeleteDevicesBody(RequestBody):
    devices: list[StrictStr]


class _LoginAsBody(RequestBody):
    valid_until_ms: StrictInt | None = None


async def _optional_object(request: web.Request) -> dict[str, Any]:
    # Synapse takes an empty body where every field is optional
    if not await request.read():
        return {}
    return await read_json_object(request)


class UserActivityEndpoints:
    def __init__(self, auth: RequestAuthenticator, activity: AdminUserActivity) -> None:
        self._auth = auth
        self._activity = activity

    def routes(self) -> list[web.RouteDef]:
        device = ADMIN + "/v2/users/{user_id}/devices/{device_id}"
        return [
            web.get(ADMIN + "/v2/users/{user_id}/devices", self.list_devices),
            web.post(ADMIN + "/v2/users/{user_id}/devices", self.create_device),
            web.get(device, self.get_device),
            web.put(device, self.rename_device),
            web.delete(device, self.delete_device),
            web.post(ADMIN + "/v2/users/{user_id}/delete_devices", self.delete_devices),
            web.post(ADMIN + "/v1/users/{user_id}/login", self.login_as),
            web.get(ADMIN + "/v1/users/{user_id}/joined_rooms", self.joined_rooms),
            web.get(ADMIN + "/v1/users/{user_id}/accountdata", self.account_data),
            web.get(ADMIN + "/v1/users/{user_id}/sent_invite_count", self.sent_invite_count),
            web.get(
                ADMIN + "/v1/users/{user_id}/cumulative_joined_room_count",
                self.cumulative_joined_room_count,
            ),
        ]

    async def list_devices(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users/{user_id}/devices"""
        await self._auth.require_admin(request)
        return json_response(await self._activity.list_devices(request.match_info["user_id"]))

    async def create_device(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v2/users/{user_id}/devices"""
        await self._auth.require_admin(request)
        body = await read_body(request, _CreateDeviceBody)
        await self._activity.create_device(request.match_info["user_id"], body.device_id)
        return json_response({}, status=201)

    async def get_device(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users/{user_id}/devices/{device_id}"""
        await self._auth.require_admin(request)
        match = request.match_info
        return json_response(await self._activity.get_device(match["user_id"], match["device_id"]))

    async def rename_device(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v2/users/{user_id}/devices/{device_id}"""
        await self._auth.require_admin(request)
        body = validate_body(await _optional_object(request), _RenameBody)
        match = request.match_info
        await self._activity.rename_device(match["user_id"], match["device_id"], body.display_name)
        return json_response({})

    async def delete_device(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v2/users/{user_id}/devices/{device_id}"""
        await self._auth.require_admin(request)
        match = request.match_info
        await self._activity.delete_devices(match["user_id"], [match["device_id"]])
        return json_response({})

    async def delete_devices(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v2/users/{user_id}/delete_devices"""
        await self._auth.require_admin(request)
        body = await read_body(request, _DeleteDevicesBody)
        await self._activity.delete_devices(request.match_info["user_id"], body.devices)
        return json_response({})

    async def login_as(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/users/{user_id}/login"""
        requester = await self._auth.require_admin(request)
        body = validate_body(await _optional_object(request), _LoginAsBody)
        token = await self._activity.login_as(
            requester.user_id, request.match_info["user_id"], body.valid_until_ms
        )
        return json_response({"access_token": token})

    async def joined_rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{user_id}/joined_rooms"""
        await self._auth.require_admin(request)
        return json_response(await self._activity.joined_rooms(request.match_info["user_id"]))

    async def account_data(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{user_id}/accountdata"""
        await self._auth.require_admin(request)
        return json_response(await self._activity.account_data(request.match_info["user_id"]))

    async def sent_invite_count(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{user_id}/sent_invite_count"""
        await self._auth.require_admin(request)
        from_ts = query_int(request, "from_ts", 0)
        body = await self._activity.sent_invite_count(request.match_info["user_id"], from_ts)
        return json_response(body)

    async def cumulative_joined_room_count(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{user_id}/cumulative_joined_room_count"""
        await self._auth.require_admin(request)
        from_ts = query_int(request, "from_ts", 0)
        body = await self._activity.cumulative_joined_room_count(
            request.match_info["user_id"], from_ts
        )
        return json_response(body)
