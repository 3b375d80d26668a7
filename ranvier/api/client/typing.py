"""Typing notifications: spec client-server-api "Typing Notifications" (typing.yaml)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictBool, StrictInt

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import MAX_INT
from ranvier.services.typing import TypingService


class _TypingBody(RequestBody):
    typing: StrictBool
    # milliseconds
    timeout: StrictInt | None = Field(default=None, ge=0, le=MAX_INT)


class TypingEndpoints:
    def __init__(self, auth: RequestAuthenticator, typing: TypingService) -> None:
        self._auth = auth
        self._typing = typing

    def routes(self) -> list[web.RouteDef]:
        return [web.put("/_matrix/client/v3/rooms/{roomId}/typing/{userId}", self.set_typing)]

    async def set_typing(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _TypingBody)
        match = request.match_info
        await self._typing.set_typing(
            requester.user_id,
            match["userId"],
            match["roomId"],
            typing=body.typing,
            timeout_ms=body.timeout,
        )
        return json_response({})
