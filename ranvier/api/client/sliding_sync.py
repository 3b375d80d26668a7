"""Simplified sliding sync (MSC4186), served where clients look for it, under Synapse's
unstable prefix (Synapse serves no other path for it)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, field_validator

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, invalid_param_error, json_response, read_body
from ranvier.http.params import query_int, query_string
from ranvier.services.sliding_sync.request import (
    ListFilters,
    ListRequest,
    RoomParams,
    SlidingSyncRequest,
)
from ranvier.services.sliding_sync.service import SlidingSyncService

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
# as /sync: proxies commonly cut idle requests at 60 s
MAX_TIMEOUT_MS = 55_000
# a list without `ranges` is the whole list
WHOLE_LIST = ((0, 2**53 - 1),)

StatePairBody = Annotated[list[str], Field(min_length=2, max_length=2)]
RangeBody = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]


class RoomParamsBody(RequestBody):
    required_state: list[StatePairBody]
    timeline_limit: Annotated[int, Field(ge=0)]


class FiltersBody(RequestBody):
    is_dm: bool | None = None
    spaces: list[str] | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    room_types: list[str | None] | None = None
    not_room_types: list[str | None] | None = None
    tags: list[str] | None = None
    not_tags: list[str] | None = None


class ListBody(RoomParamsBody):
    ranges: list[RangeBody] | None = None
    filters: FiltersBody | None = None

    @field_validator("ranges")
    @classmethod
    def _ordered(cls, ranges: list[list[int]] | None) -> list[list[int]] | None:
        for start, end in ranges or ():
            if start > end:
                raise invalid_param_error("A range must start at or before its end")
        return ranges


class SlidingSyncBody(RequestBody):
    conn_id: str | None = None
    lists: dict[Annotated[str, Field(max_length=64)], ListBody] = Field(
        default_factory=dict, max_length=100
    )
    room_subscriptions: dict[str, RoomParamsBody] = Field(default_factory=dict)
    extensions: dict[str, Any] = Field(default_factory=dict)


class SlidingSyncEndpoints:
    def __init__(
        self, auth: RequestAuthenticator, sliding_sync: SlidingSyncService, max_timeline_limit: int
    ) -> None:
        self._auth = auth
        self._sliding_sync = sliding_sync
        self._max_timeline_limit = max_timeline_limit

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.sync)]

    async def sync(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, SlidingSyncBody)
        answer = await self._sliding_sync.sync(
            SlidingSyncRequest(
                user_id=requester.user_id,
                device_id=requester.device_id,
                conn_id=body.conn_id or "",
                pos=query_string(request, "pos"),
                timeout_ms=min(query_int(request, "timeout", 0), MAX_TIMEOUT_MS),
                lists={name: self._list(one) for name, one in body.lists.items()},
                room_subscriptions={
                    room_id: self._params(one) for room_id, one in body.room_subscriptions.items()
                },
                extensions=body.extensions,
            )
        )
        return json_response(answer)

    def _params(self, body: RoomParamsBody) -> RoomParams:
        return RoomParams(
            tuple((kind, key) for kind, key in body.required_state),
            min(body.timeline_limit, self._max_timeline_limit),
        )

    def _list(self, body: ListBody) -> ListRequest:
        filters = body.filters or FiltersBody()
        return ListRequest(
            ranges=(
                tuple((start, end) for start, end in body.ranges)
                if body.ranges is not None
                else WHOLE_LIST
            ),
            params=self._params(body),
            filters=ListFilters(
                is_dm=filters.is_dm,
                is_encrypted=filters.is_encrypted,
                is_invite=filters.is_invite,
                room_types=tuple(filters.room_types) if filters.room_types is not None else None,
                not_room_types=tuple(filters.not_room_types or ()),
                spaces=tuple(filters.spaces) if filters.spaces is not None else None,
                tags=tuple(filters.tags) if filters.tags is not None else None,
                not_tags=tuple(filters.not_tags or ()),
            ),
        )
