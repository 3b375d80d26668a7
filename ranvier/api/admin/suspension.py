"""Account moderation by server admins: suspending (MSC3823) and locking.

Synapse's PUT /_synapse/admin/v1/suspend/{user_id}, and the spec's (v1.18, admin.yaml)
GET|PUT /_matrix/client/v1/admin/suspend/{userId} and .../lock/{userId}.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictBool

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.suspension import Flag, Suspensions

SPEC_ADMIN = "/_matrix/client/v1/admin"


class _SynapseSuspendBody(RequestBody):
    suspend: StrictBool


class _SuspendedBody(RequestBody):
    suspended: StrictBool


class _LockedBody(RequestBody):
    locked: StrictBool


class AccountModerationEndpoints:
    def __init__(self, auth: RequestAuthenticator, suspensions: Suspensions) -> None:
        self._auth = auth
        self._suspensions = suspensions

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/_synapse/admin/v1/suspend/{userId}", self.synapse_suspend),
            web.get(SPEC_ADMIN + "/suspend/{userId}", self.get_suspended),
            web.put(SPEC_ADMIN + "/suspend/{userId}", self.set_suspended),
            web.get(SPEC_ADMIN + "/lock/{userId}", self.get_locked),
            web.put(SPEC_ADMIN + "/lock/{userId}", self.set_locked),
        ]

    async def synapse_suspend(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/suspend/{user_id}"""
        await self._auth.require_admin(request)
        user_id = request.match_info["userId"]
        body = await read_body(request, _SynapseSuspendBody)
        await self._suspensions.set_suspended_by_synapse_admin(user_id, body.suspend)
        return json_response({f"user_{user_id}_suspended": body.suspend})

    async def _get(self, request: web.Request, flag: Flag) -> web.Response:
        # spec: the caller is checked to be an admin before any account is looked up
        requester = await self._auth.require_admin(request)
        user_id = request.match_info["userId"]
        value = await self._suspensions.moderation_status(requester.user_id, user_id, flag)
        return json_response({flag: value})

    async def get_suspended(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/admin/suspend/{userId}"""
        return await self._get(request, "suspended")

    async def get_locked(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/admin/lock/{userId}"""
        return await self._get(request, "locked")

    async def set_suspended(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v1/admin/suspend/{userId}"""
        requester = await self._auth.require_admin(request)
        body = await read_body(request, _SuspendedBody)
        user_id = request.match_info["userId"]
        await self._suspensions.set_moderation(
            requester.user_id, user_id, "suspended", body.suspended
        )
        return json_response({"suspended": body.suspended})

    async def set_locked(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v1/admin/lock/{userId}"""
        requester = await self._auth.require_admin(request)
        body = await read_body(request, _LockedBody)
        user_id = request.match_info["userId"]
        await self._suspensions.set_moderation(requester.user_id, user_id, "locked", body.locked)
        return json_response({"locked": body.locked})
