"""Registration tokens admin API (Synapse's paths and shapes, so admin tools work)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import json_response, read_json_object
from ranvier.http.params import query_bool
from ranvier.services.registration_tokens import DEFAULT_TOKEN_LENGTH, RegistrationTokenService
from ranvier.storage.registration_tokens import UNSET

PREFIX = "/_synapse/admin/v1/registration_tokens"


def _invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def _is_int(value: Any) -> bool:
    # JSON true/false arrive as bool, which Python counts as int
    return isinstance(value, int) and not isinstance(value, bool)


def _uses_allowed(body: dict[str, Any]) -> int | None:
    value = body.get("uses_allowed")
    if value is None or (_is_int(value) and value >= 0):
        return value
    raise _invalid("uses_allowed must be a non-negative integer or null")


def _expiry_time(body: dict[str, Any]) -> int | None:
    value = body.get("expiry_time")
    if value is None or _is_int(value):
        return value
    raise _invalid("expiry_time must be an integer (ms since the epoch) or null")


class RegistrationTokenEndpoints:
    def __init__(self, auth: RequestAuthenticator, tokens: RegistrationTokenService) -> None:
        self._auth = auth
        self._tokens = tokens

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.list_tokens),
            web.post(PREFIX + "/new", self.create),
            web.get(PREFIX + "/{token}", self.get),
            web.put(PREFIX + "/{token}", self.update),
            web.delete(PREFIX + "/{token}", self.delete),
        ]

    async def list_tokens(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/registration_tokens"""
        await self._auth.require_admin(request)
        valid = query_bool(request, "valid")
        tokens = await self._tokens.list_tokens(valid)
        return json_response({"registration_tokens": [token.as_json() for token in tokens]})

    async def create(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/registration_tokens/new"""
        await self._auth.require_admin(request)
        body = await read_json_object(request)
        token = body.get("token")
        if token is not None and not isinstance(token, str):
            raise _invalid("token must be a string")
        length = body.get("length", DEFAULT_TOKEN_LENGTH)
        if not _is_int(length):
            raise _invalid("length must be an integer")
        created = await self._tokens.create(token, length, _uses_allowed(body), _expiry_time(body))
        return json_response(created.as_json())

    async def get(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/registration_tokens/{token}"""
        await self._auth.require_admin(request)
        token = await self._tokens.get(request.match_info["token"])
        return json_response(token.as_json())

    async def update(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/registration_tokens/{token}"""
        await self._auth.require_admin(request)
        body = await read_json_object(request)
        uses_allowed = _uses_allowed(body) if "uses_allowed" in body else UNSET
        expiry_time = _expiry_time(body) if "expiry_time" in body else UNSET
        token = await self._tokens.update(
            request.match_info["token"], uses_allowed=uses_allowed, expiry_time=expiry_time
        )
        return json_response(token.as_json())

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/registration_tokens/{token}"""
        await self._auth.require_admin(request)
        await self._tokens.delete(request.match_info["token"])
        return json_response({})
