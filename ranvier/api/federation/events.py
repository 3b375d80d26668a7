"""A room's events and state for other servers: spec server-server-api "Retrieving events"
(events.yaml), "Backfilling and retrieving missing events" (backfill.yaml) and "Retrieving
event authorisation information" (event_auth.yaml). Rules in services/federation/history.py.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictInt

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import (
    missing_param,
    parse_int_param,
    query_choice,
    required_query_string,
)
from ranvier.services.federation.history import DEFAULT_MISSING_EVENTS, FederationHistory

PREFIX = "/_matrix/federation/v1"


class GetMissingEventsBody(RequestBody):
    # the spec requires both; as Synapse, a server that leaves one out means none (SyTest
    # asks with an empty body and expects an empty answer)
    earliest_events: list[str] = []
    latest_events: list[str] = []
    limit: StrictInt = Field(default=DEFAULT_MISSING_EVENTS, ge=0)
    min_depth: StrictInt = 0


class FederationEventEndpoints:
    def __init__(self, auth: FederationAuthenticator, history: FederationHistory) -> None:
        self._auth = auth
        self._history = history

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "/event/{eventId}", self.get_event),
            web.get(PREFIX + "/state/{roomId}", self.get_state),
            web.get(PREFIX + "/state_ids/{roomId}", self.get_state_ids),
            web.get(PREFIX + "/event_auth/{roomId}/{eventId}", self.get_event_auth),
            web.get(PREFIX + "/backfill/{roomId}", self.backfill),
            web.post(PREFIX + "/get_missing_events/{roomId}", self.get_missing_events),
            web.get(PREFIX + "/timestamp_to_event/{roomId}", self.timestamp_to_event),
        ]

    async def get_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/event/{eventId}"""
        origin = await self._auth.authenticate(request)
        event_id = request.match_info["eventId"]
        return json_response(await self._history.get_event(origin.server_name, event_id))

    async def get_state(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/state/{roomId}"""
        origin = await self._auth.authenticate(request)
        event_id = required_query_string(request, "event_id")
        room_id = request.match_info["roomId"]
        return json_response(await self._history.state(origin.server_name, room_id, event_id))

    async def get_state_ids(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/state_ids/{roomId}"""
        origin = await self._auth.authenticate(request)
        event_id = required_query_string(request, "event_id")
        room_id = request.match_info["roomId"]
        return json_response(await self._history.state_ids(origin.server_name, room_id, event_id))

    async def get_event_auth(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}"""
        origin = await self._auth.authenticate(request)
        room_id, event_id = request.match_info["roomId"], request.match_info["eventId"]
        return json_response(await self._history.event_auth(origin.server_name, room_id, event_id))

    async def backfill(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/backfill/{roomId}"""
        origin = await self._auth.authenticate(request)
        event_ids = request.query.getall("v", [])
        if not event_ids:
            raise missing_param("v")
        limit = parse_int_param("limit", required_query_string(request, "limit"), minimum=0)
        room_id = request.match_info["roomId"]
        return json_response(
            await self._history.backfill(origin.server_name, room_id, event_ids, limit)
        )

    async def get_missing_events(self, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/get_missing_events/{roomId}"""
        origin = await self._auth.authenticate(request)
        await self._history.check_acl(origin.server_name, request.match_info["roomId"])
        body = await read_body(request, GetMissingEventsBody)
        return json_response(
            await self._history.get_missing_events(
                origin.server_name,
                request.match_info["roomId"],
                body.earliest_events,
                body.latest_events,
                body.limit,
                body.min_depth,
            )
        )

    async def timestamp_to_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/timestamp_to_event/{roomId}"""
        origin = await self._auth.authenticate(request)
        ts = parse_int_param("ts", required_query_string(request, "ts"), minimum=0)
        required_query_string(request, "dir")
        direction = query_choice(request, "dir", "f", ("f", "b"))
        return json_response(
            await self._history.timestamp_to_event(
                origin.server_name, request.match_info["roomId"], ts, forwards=direction == "f"
            )
        )
