"""Server-side search: spec client-server-api "Server Side Search", search.yaml."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field, StrictBool, StrictInt, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import bad_json
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import query_string
from ranvier.protocol.filters import FilterError, RoomEventFilter, parse_room_event_filter
from ranvier.services.search import (
    ALL_KEYS,
    DEFAULT_CONTEXT,
    RoomEventsCriteria,
    SearchService,
)

CLIENT = "/_matrix/client/v3"


class _EventContext(RequestBody):
    before_limit: StrictInt = Field(default=DEFAULT_CONTEXT, ge=0)
    after_limit: StrictInt = Field(default=DEFAULT_CONTEXT, ge=0)
    include_profile: StrictBool = False


class _Group(RequestBody):
    key: Literal["room_id", "sender"]


class _Groupings(RequestBody):
    group_by: list[_Group] = Field(default_factory=list)


class _RoomEvents(RequestBody):
    search_term: StrictStr
    keys: list[Literal["content.body", "content.name", "content.topic"]] | None = None
    filter: dict[str, Any] | None = None
    order_by: Literal["rank", "recent"] = "rank"
    event_context: _EventContext | None = None
    include_state: StrictBool = False
    groupings: _Groupings | None = None


class _Categories(RequestBody):
    room_events: _RoomEvents | None = None


class _SearchBody(RequestBody):
    search_categories: _Categories


def _criteria(body: _RoomEvents) -> RoomEventsCriteria:
    event_filter = RoomEventFilter()
    if body.filter is not None:
        try:
            event_filter = parse_room_event_filter(body.filter)
        except FilterError as exc:
            raise bad_json(f"search_categories.room_events.filter: {exc}") from None
    context = body.event_context
    return RoomEventsCriteria(
        search_term=body.search_term,
        keys=tuple(dict.fromkeys(body.keys)) if body.keys is not None else ALL_KEYS,
        filter=event_filter,
        order_by=body.order_by,
        include_context=context is not None,
        before_limit=context.before_limit if context else DEFAULT_CONTEXT,
        after_limit=context.after_limit if context else DEFAULT_CONTEXT,
        include_profile=context.include_profile if context else False,
        include_state=body.include_state,
        group_by=tuple(dict.fromkeys(g.key for g in body.groupings.group_by))
        if body.groupings
        else (),
    )


class SearchEndpoints:
    def __init__(self, auth: RequestAuthenticator, search: SearchService) -> None:
        self._auth = auth
        self._search = search

    def routes(self) -> list[web.RouteDef]:
        return [web.post(CLIENT + "/search", self.search)]

    async def search(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/search"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _SearchBody)
        categories: dict[str, Any] = {}
        room_events = body.search_categories.room_events
        if room_events is not None:
            categories["room_events"] = await self._search.search_room_events(
                requester.user_id,
                requester.device_id,
                _criteria(room_events),
                query_string(request, "next_batch"),
            )
        return json_response({"search_categories": categories})
