"""Our users' devices and keys, for other servers: spec server-server-api "Device
Management" (user_devices.yaml) and "End-to-End Encryption" (user_keys.yaml)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, StrictStr

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import RequestBody, invalid_param_error, json_response, read_body
from ranvier.services.federation.e2e_keys import FederationKeyService

USER = "/_matrix/federation/v1/user"


def _user_id(value: str) -> str:
    if not value.startswith("@") or ":" not in value:
        raise invalid_param_error(f"{value!r} is not a user ID")
    return value


_UserId = Annotated[str, AfterValidator(_user_id)]


class _UserKeysQueryBody(RequestBody):
    # user ID -> device IDs (empty: all of them)
    device_keys: dict[_UserId, list[StrictStr]]


class _UserKeysClaimBody(RequestBody):
    # user ID -> device ID -> algorithm
    one_time_keys: dict[_UserId, dict[str, StrictStr]]


class UserKeyEndpoints:
    def __init__(self, auth: FederationAuthenticator, keys: FederationKeyService) -> None:
        self._auth = auth
        self._keys = keys

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(USER + "/devices/{userId}", self.user_devices),
            web.post(USER + "/keys/query", self.query),
            web.post(USER + "/keys/claim", self.claim),
        ]

    async def user_devices(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/user/devices/{userId}"""
        await self._auth.authenticate(request)
        return json_response(await self._keys.user_devices(request.match_info["userId"]))

    async def query(self, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/user/keys/query"""
        await self._auth.authenticate(request)
        wanted = (await read_body(request, _UserKeysQueryBody)).device_keys
        return json_response(await self._keys.query(wanted))

    async def claim(self, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/user/keys/claim"""
        await self._auth.authenticate(request)
        wanted = (await read_body(request, _UserKeysClaimBody)).one_time_keys
        return json_response(await self._keys.claim(wanted))
