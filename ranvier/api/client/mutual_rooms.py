"""Mutual rooms: spec mutual_rooms.yaml (MSC2666)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import invalid_param, missing_param
from ranvier.services.mutual_rooms import MutualRoomsService


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise invalid_param(f"Duplicate {name} query parameter")
    return values[0] if values else None


class MutualRoomsEndpoints:
    def __init__(self, auth: RequestAuthenticator, mutual_rooms: MutualRoomsService) -> None:
        self._auth = auth
        self._mutual_rooms = mutual_rooms

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_matrix/client/v1/mutual_rooms", self.get_mutual_rooms),
            # the unstable path clients written against MSC2666 call
            web.get(
                "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms",
                self.get_mutual_rooms,
            ),
        ]

    async def get_mutual_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/mutual_rooms"""
        requester = await self._auth.require_user(request)
        user_id = _single(request, "user_id")
        if user_id is None:
            raise missing_param("user_id")
        # an empty `from` is the first page
        from_batch = _single(request, "from") or None
        found = await self._mutual_rooms.mutual_rooms(requester.user_id, user_id, from_batch)
        body: dict[str, Any] = {"joined": found.joined, "count": found.count}
        if found.next_batch is not None:
            body["next_batch"] = found.next_batch
        return json_response(body)
