"""Synapse's rate limit override admin API (docs/admin_api/user_admin_api: "Override
ratelimiting for users")."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import StrictInt

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.services.ratelimit_overrides import RatelimitOverrides
from ranvier.storage.ratelimit_overrides import MessageLimit

ADMIN = "/_synapse/admin"


class _OverrideBody(RequestBody):
    # absent: 0, which lifts the limit
    messages_per_second: StrictInt = 0
    burst_count: StrictInt = 0


def _limit_json(limit: MessageLimit) -> dict[str, Any]:
    return {"messages_per_second": limit.messages_per_second, "burst_count": limit.burst_count}


class RatelimitOverrideEndpoints:
    def __init__(self, auth: RequestAuthenticator, overrides: RatelimitOverrides) -> None:
        self._auth = auth
        self._overrides = overrides

    def routes(self) -> list[web.RouteDef]:
        path = ADMIN + "/v1/users/{user_id}/override_ratelimit"
        return [web.get(path, self.get), web.post(path, self.set), web.delete(path, self.delete)]

    async def get(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{user_id}/override_ratelimit"""
        await self._auth.require_admin(request)
        limit = await self._overrides.get(request.match_info["user_id"])
        return json_response({} if limit is None else _limit_json(limit))

    async def set(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/users/{user_id}/override_ratelimit"""
        await self._auth.require_admin(request)
        raw = await read_json_object(request) if await request.read() else {}
        body = validate_body(raw, _OverrideBody, bad_value="M_INVALID_PARAM")
        for name, value in (
            ("messages_per_second", body.messages_per_second),
            ("burst_count", body.burst_count),
        ):
            if value < 0:
                raise MatrixError(400, "M_INVALID_PARAM", f"{name!r} must be a positive integer")
        limit = MessageLimit(body.messages_per_second, body.burst_count)
        await self._overrides.set(request.match_info["user_id"], limit)
        return json_response(_limit_json(limit))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/users/{user_id}/override_ratelimit"""
        await self._auth.require_admin(request)
        await self._overrides.delete(request.match_info["user_id"])
        return json_response({})
