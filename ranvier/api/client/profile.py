"""Profiles: spec client-server-api "Profiles" (profile.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.requester import UserRequester
from ranvier.services.profiles import DISPLAYNAME, ProfileService

PREFIX = "/_matrix/client/v3/profile/{userId}"


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
        body = await read_json_object(request)
        await self._profiles.set_field(
            request.match_info["userId"],
            request.match_info["keyName"],
            body,
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
