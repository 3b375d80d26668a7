"""Profiles: spec client-server-api "Profiles" (profile.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.requester import UserRequester
from ranvier.services.profiles import AVATAR_URL, DISPLAYNAME, TIME_ZONE, ProfileService

PREFIX = "/_matrix/client/v3/profile/{userId}"


# The fields the spec gives a type. null gets through to the service, which refuses it
# with a hint to DELETE instead.
class _DisplayName(RequestBody):
    value: StrictStr | None = Field(alias="displayname")


class _AvatarUrl(RequestBody):
    value: StrictStr | None = Field(alias="avatar_url")


class _TimeZone(RequestBody):
    value: StrictStr | None = Field(alias="m.tz")


_TYPED_FIELDS: dict[str, type[_DisplayName | _AvatarUrl | _TimeZone]] = {
    DISPLAYNAME: _DisplayName,
    AVATAR_URL: _AvatarUrl,
    TIME_ZONE: _TimeZone,
}


def parse_field_value(key: str, body: dict[str, Any]) -> Any:
    """The value the body gives profile field `key` (spec: `{keyName: value}`)."""
    model = _TYPED_FIELDS.get(key)
    if model is not None:
        return validate_body(body, model).value
    if key not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"The body must contain '{key}'")
    # custom fields hold any JSON value
    return body[key]


class ProfileEndpoints:
    def __init__(self, auth: RequestAuthenticator, profiles: ProfileService) -> None:
        self._auth = auth
        self._profiles = profiles

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.get_profile),
            web.get(PREFIX + "/{keyName}", self.get_field),
            web.put(PREFIX + "/{keyName}", self.set_field),
            web.delete(PREFIX + "/{keyName}", self.delete_field),
        ]

    async def _lookup_requester(self, request: web.Request) -> str | None:
        if self._profiles.requires_auth_for_lookups:
            return (await self._auth.require_user(request, allow_guest=True)).user_id
        if self._profiles.limits_lookups_to_shared_rooms:
            # a token, when sent, identifies whose rooms count
            requester = await self._auth.optional_user(request)
            return requester.user_id if requester is not None else None
        return None

    async def _changer(self, request: web.Request) -> UserRequester:
        # spec: guest access - guests may change (only) their display name
        key = request.match_info["keyName"]
        return await self._auth.require_user(request, allow_guest=key == DISPLAYNAME)

    async def get_profile(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/profile/{userId}"""
        requester = await self._lookup_requester(request)
        body = await self._profiles.get_profile(request.match_info["userId"], requester)
        return json_response(body)

    async def get_field(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/profile/{userId}/{keyName}"""
        requester = await self._lookup_requester(request)
        body = await self._profiles.get_field(
            request.match_info["userId"], request.match_info["keyName"], requester
        )
        return json_response(body)

    async def set_field(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/profile/{userId}/{keyName}"""
        requester = await self._changer(request)
        key = request.match_info["keyName"]
        value = parse_field_value(key, await read_json_object(request))
        await self._profiles.set_field(
            request.match_info["userId"],
            key,
            value,
            requester=requester.user_id,
            is_admin=requester.is_admin,
            is_guest=requester.is_guest,
        )
        return json_response({})

    async def delete_field(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/profile/{userId}/{keyName}"""
        requester = await self._changer(request)
        await self._profiles.delete_field(
            request.match_info["userId"],
            request.match_info["keyName"],
            requester=requester.user_id,
            is_admin=requester.is_admin,
            is_guest=requester.is_guest,
        )
        return json_response({})
