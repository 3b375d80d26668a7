"""The user directory: spec client-server-api "User Directory", users.yaml."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictInt, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.user_directory import DEFAULT_LIMIT, UserDirectoryService

CLIENT = "/_matrix/client/v3"


class _SearchBody(RequestBody):
    search_term: StrictStr
    limit: StrictInt = Field(default=DEFAULT_LIMIT, ge=0)


class UserDirectoryEndpoints:
    def __init__(self, auth: RequestAuthenticator, directory: UserDirectoryService) -> None:
        self._auth = auth
        self._directory = directory

    def routes(self) -> list[web.RouteDef]:
        return [web.post(CLIENT + "/user_directory/search", self.search)]

    async def search(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/user_directory/search"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _SearchBody)
        result = await self._directory.search(requester.user_id, body.search_term, body.limit)
        return json_response(result.json())
