"""Typing notifications: spec client-server-api "Typing Notifications" (typing.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import json_response, read_json_object
from ranvier.services.typing import TypingService


class TypingEndpoints:
    def __init__(self, auth: RequestAuthenticator, typing: TypingService) -> None:
        self._auth = auth
        self._typing = typing

    def routes(self) -> list[web.RouteDef]:
        return [web.put("/_matrix/client/v3/rooms/{roomId}/typing/{userId}", self.set_typing)]

    async def set_typing(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        typing = body.get("typing")
        if typing is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'typing'")
        if not isinstance(typing, bool):
            raise MatrixError(400, "M_BAD_JSON", "'typing' must be true or false")
        timeout = body.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0
        ):
            raise MatrixError(400, "M_BAD_JSON", "'timeout' must be a number of milliseconds")
        match = request.match_info
        await self._typing.set_typing(
            requester.user_id, match["userId"], match["roomId"], typing=typing, timeout_ms=timeout
        )
        return json_response({})
