"""Account data and room tags: spec client-server-api "Client Config" (account-data.yaml) and
"Room Tagging" (tags.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.services.account_data import AccountDataService

USER = "/_matrix/client/v3/user/{userId}"
ROOM = USER + "/rooms/{roomId}"


class _TagFields(RequestBody):
    """What the spec says of a tag's content; the content is stored whole, with whatever
    else the client put in it."""

    # the room's place among the tag's rooms: a number (in [0, 1], checked by the
    # service) when present; the default is never stored, the content is passed on as sent
    order: float = 0.0


class AccountDataEndpoints:
    def __init__(self, auth: RequestAuthenticator, account_data: AccountDataService) -> None:
        self._auth = auth
        self._account_data = account_data

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(USER + "/account_data/{type}", self.get_global),
            web.put(USER + "/account_data/{type}", self.set_global),
            web.get(ROOM + "/account_data/{type}", self.get_room),
            web.put(ROOM + "/account_data/{type}", self.set_room),
            web.get(ROOM + "/tags", self.get_tags),
            web.put(ROOM + "/tags/{tag}", self.add_tag),
            web.delete(ROOM + "/tags/{tag}", self.remove_tag),
        ]

    async def _requester(self, request: web.Request) -> str:
        return (await self._auth.require_user(request)).user_id

    async def get_global(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/user/{userId}/account_data/{type}"""
        match = request.match_info
        content = await self._account_data.get_global(
            await self._requester(request), match["userId"], match["type"]
        )
        return json_response(content)

    async def set_global(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/user/{userId}/account_data/{type}"""
        requester = await self._requester(request)
        body = await read_json_object(request)
        match = request.match_info
        await self._account_data.set_global(requester, match["userId"], match["type"], body)
        return json_response({})

    async def get_room(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
        match = request.match_info
        content = await self._account_data.get_room(
            await self._requester(request), match["userId"], match["roomId"], match["type"]
        )
        return json_response(content)

    async def set_room(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
        requester = await self._requester(request)
        body = await read_json_object(request)
        match = request.match_info
        await self._account_data.set_room(
            requester, match["userId"], match["roomId"], match["type"], body
        )
        return json_response({})

    async def get_tags(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"""
        match = request.match_info
        tags = await self._account_data.get_tags(
            await self._requester(request), match["userId"], match["roomId"]
        )
        return json_response({"tags": tags})

    async def add_tag(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
        requester = await self._requester(request)
        body = await read_json_object(request)
        validate_body(body, _TagFields)
        match = request.match_info
        await self._account_data.add_tag(
            requester, match["userId"], match["roomId"], match["tag"], body
        )
        return json_response({})

    async def remove_tag(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
        match = request.match_info
        await self._account_data.remove_tag(
            await self._requester(request), match["userId"], match["roomId"], match["tag"]
        )
        return json_response({})
