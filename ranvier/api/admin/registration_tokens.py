"""Registration tokens admin API (Synapse's paths and shapes, so admin tools work)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import query_bool
from ranvier.services.registration_tokens import DEFAULT_TOKEN_LENGTH, RegistrationTokenService
from ranvier.storage.registration_tokens import UNSET

PREFIX = "/_synapse/admin/v1/registration_tokens"
# Synapse answers every wrong value here with M_INVALID_PARAM; admin tools expect it
BAD_VALUE = "M_INVALID_PARAM"


class _TokenLimits(RequestBody):
    # null: no limit
    uses_allowed: int | None = Field(default=None, ge=0)
    # ms since the epoch; null: never expires
    expiry_time: int | None = None


class _NewTokenBody(_TokenLimits):
    # absent: the server makes one up, `length` characters long
    token: str | None = None
    length: int = DEFAULT_TOKEN_LENGTH


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
        body = await read_body(request, _NewTokenBody, bad_value=BAD_VALUE)
        created = await self._tokens.create(
            body.token, body.length, body.uses_allowed, body.expiry_time
        )
        return json_response(created.as_json())

    async def get(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/registration_tokens/{token}"""
        await self._auth.require_admin(request)
        token = await self._tokens.get(request.match_info["token"])
        return json_response(token.as_json())

    async def update(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/registration_tokens/{token}"""
        await self._auth.require_admin(request)
        body = await read_body(request, _TokenLimits, bad_value=BAD_VALUE)
        given = body.model_fields_set
        uses_allowed = body.uses_allowed if "uses_allowed" in given else UNSET
        expiry_time = body.expiry_time if "expiry_time" in given else UNSET
        token = await self._tokens.update(
            request.match_info["token"], uses_allowed=uses_allowed, expiry_time=expiry_time
        )
        return json_response(token.as_json())

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/registration_tokens/{token}"""
        await self._auth.require_admin(request)
        await self._tokens.delete(request.match_info["token"])
        return json_response({})
