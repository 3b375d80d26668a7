"""The legacy client endpoints Synapse still serves (spec r0.6.1, deprecated there and
removed since): the event stream, the initial syncs, an event by ID alone, and sending a
message without a transaction ID. Declared under v3 like the rest; paths.py adds r0."""

from __future__ import annotations

import secrets

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.sync import query_sync_token
from ranvier.http.json import json_response, read_json_object
from ranvier.http.params import query_bool, query_int, query_string
from ranvier.http.ratelimit import Ratelimiters
from ranvier.services.legacy_sync import (
    DEFAULT_INITIAL_SYNC_LIMIT,
    DEFAULT_STREAM_LIMIT,
    MAX_LIMIT,
    LegacySyncService,
)
from ranvier.services.rooms.client_sends import EventSendingService

CLIENT = "/_matrix/client/v3"
# as /sync: a long-poll is answered within this, whatever the client asks
MAX_TIMEOUT_MS = 10 * 60 * 1000
# Synapse's default wait of the event stream
DEFAULT_TIMEOUT_MS = 30_000


class LegacyEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        legacy: LegacySyncService,
        sending: EventSendingService,
        ratelimiters: Ratelimiters | None = None,
    ) -> None:
        self._auth = auth
        self._legacy = legacy
        self._sending = sending
        self._ratelimiters = ratelimiters

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/events", self.event_stream),
            web.get(CLIENT + "/events/{eventId}", self.get_event),
            web.get(CLIENT + "/initialSync", self.initial_sync),
            web.get(CLIENT + "/rooms/{roomId}/initialSync", self.room_initial_sync),
            web.post(CLIENT + "/rooms/{roomId}/send/{eventType}", self.send_without_txn),
        ]

    async def event_stream(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/events"""
        requester = await self._auth.require_user(request, allow_guest=True)
        from_token = query_sync_token(request, "from")
        limit = query_int(request, "limit", DEFAULT_STREAM_LIMIT)
        timeout = query_int(request, "timeout", DEFAULT_TIMEOUT_MS)
        body = await self._legacy.event_stream(
            requester,
            from_token=from_token,
            timeout_ms=min(timeout, MAX_TIMEOUT_MS),
            # as Synapse: a limit of 0 means the default
            limit=min(limit, MAX_LIMIT) or DEFAULT_STREAM_LIMIT,
            room_id=query_string(request, "room_id"),
        )
        return json_response(body)

    async def get_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/events/{eventId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body = await self._legacy.get_event(requester, request.match_info["eventId"])
        return json_response(body)

    async def initial_sync(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/initialSync"""
        requester = await self._auth.require_user(request)
        body = await self._legacy.initial_sync(
            requester,
            limit=min(query_int(request, "limit", DEFAULT_INITIAL_SYNC_LIMIT), MAX_LIMIT),
            archived=bool(query_bool(request, "archived")),
        )
        return json_response(body)

    async def room_initial_sync(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/initialSync"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body = await self._legacy.room_initial_sync(
            requester,
            request.match_info["roomId"],
            limit=min(query_int(request, "limit", DEFAULT_INITIAL_SYNC_LIMIT), MAX_LIMIT),
        )
        return json_response(body)

    async def send_without_txn(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/send/{eventType}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        content = await read_json_object(request)
        if self._ratelimiters is not None:
            self._ratelimiters.check_message(requester)
        # every POST is a new event: a transaction ID no client can repeat
        event = await self._sending.send_message(
            requester,
            request.match_info["roomId"],
            request.match_info["eventType"],
            content,
            "legacy-post-" + secrets.token_urlsafe(16),
        )
        return json_response({"event_id": event.event_id})
