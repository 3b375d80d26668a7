"""Reading rooms, redacting and reporting: spec rooms.yaml (event, state, members,
joined_members), message_pagination.yaml, event_context.yaml,
room_event_by_timestamp.yaml, redaction.yaml, report_content.yaml."""

from __future__ import annotations

import secrets

from aiohttp import web
from pydantic import StrictInt, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import bad_json
from ranvier.http.json import RequestBody, json_response, parse_json, read_body
from ranvier.http.params import (
    invalid_param,
    parse_int_param,
    query_choice,
    query_int,
    query_string,
    required_query_string,
)
from ranvier.protocol.filters import FilterError, RoomEventFilter, parse_room_event_filter
from ranvier.services.rooms.client_redactions import RedactionService
from ranvier.services.rooms.reading import DEFAULT_LIMIT, RoomReadingService
from ranvier.services.rooms.reports import ReportService
from ranvier.streams.tokens import InvalidToken, RoomPosition, StreamToken, parse_token

CLIENT = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


class _RedactBody(RequestBody):
    reason: StrictStr | None = None


class _ReportEventBody(RequestBody):
    reason: StrictStr | None = None
    score: StrictInt | None = None


class _ReportRoomBody(RequestBody):
    reason: StrictStr


def _token(request: web.Request, name: str) -> RoomPosition | StreamToken | None:
    value = query_string(request, name)
    if value is None:
        return None
    try:
        return parse_token(value)
    except InvalidToken as exc:
        raise invalid_param(f"Query parameter '{name}': {exc}") from None


def _event_filter(request: web.Request) -> RoomEventFilter:
    value = query_string(request, "filter")
    if value is None:
        return RoomEventFilter()
    try:
        return parse_room_event_filter(parse_json(value))
    except FilterError as exc:
        raise bad_json(f"Invalid filter: {exc}") from None


def _limit(request: web.Request, event_filter: RoomEventFilter) -> int:
    # spec: the filter's limit, when given, is overridden by the `limit` parameter
    return query_int(request, "limit", event_filter.limit_or(DEFAULT_LIMIT))


class RoomReadingEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        reading: RoomReadingService,
        redacting: RedactionService,
        reports: ReportService,
    ) -> None:
        self._auth = auth
        self._reading = reading
        self._redacting = redacting
        self._reports = reports

    def routes(self) -> list[web.RouteDef]:
        rooms = CLIENT + "/rooms/{roomId}"
        return [
            web.get(rooms + "/event/{eventId}", self.get_event),
            web.get(rooms + "/state", self.get_state),
            web.get(rooms + "/state/{eventType}/{stateKey}", self.get_state_event),
            # spec: an empty state key may be left out of the path (with or without the slash)
            web.get(rooms + "/state/{eventType}", self.get_state_event),
            web.get(rooms + "/state/{eventType}/", self.get_state_event),
            web.get(rooms + "/members", self.get_members),
            web.get(rooms + "/joined_members", self.get_joined_members),
            web.get(rooms + "/messages", self.get_messages),
            web.get(rooms + "/context/{eventId}", self.get_context),
            web.get(CLIENT_V1 + "/rooms/{roomId}/timestamp_to_event", self.timestamp_to_event),
            web.put(rooms + "/redact/{eventId}/{txnId}", self.redact),
            # r0 servers took a redaction by POST, without a transaction ID (as Synapse)
            web.post(rooms + "/redact/{eventId}", self.redact),
            web.post(rooms + "/report/{eventId}", self.report_event),
            web.post(rooms + "/report", self.report_room),
        ]

    async def get_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        event = await self._reading.get_event(
            requester, request.match_info["roomId"], request.match_info["eventId"]
        )
        return json_response(event)

    async def get_state(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state"""
        requester = await self._auth.require_user(request, allow_guest=True)
        return json_response(await self._reading.get_state(requester, request.match_info["roomId"]))

    async def get_state_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        shape = query_choice(request, "format", "content", ("content", "event"))
        event = await self._reading.get_state_event(
            requester,
            request.match_info["roomId"],
            request.match_info["eventType"],
            request.match_info.get("stateKey", ""),
        )
        return json_response(event if shape == "event" else event["content"])

    async def get_members(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/members"""
        requester = await self._auth.require_user(request, allow_guest=True)
        membership = query_string(request, "membership")
        not_membership = query_string(request, "not_membership")
        for name, value in (("membership", membership), ("not_membership", not_membership)):
            if value is not None and value not in MEMBERSHIPS:
                raise invalid_param(f"Query parameter '{name}' must be one of {MEMBERSHIPS}")
        chunk = await self._reading.get_members(
            requester,
            request.match_info["roomId"],
            at=_token(request, "at"),
            membership=membership,
            not_membership=not_membership,
        )
        return json_response({"chunk": chunk})

    async def get_joined_members(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/joined_members"""
        requester = await self._auth.require_user(request, allow_guest=True)
        joined = await self._reading.get_joined_members(requester, request.match_info["roomId"])
        return json_response({"joined": joined})

    async def get_messages(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/messages"""
        requester = await self._auth.require_user(request, allow_guest=True)
        direction = query_choice(request, "dir", "b", ("b", "f"))
        event_filter = _event_filter(request)
        body = await self._reading.messages(
            requester,
            request.match_info["roomId"],
            from_token=_token(request, "from"),
            to_token=_token(request, "to"),
            backwards=direction == "b",
            limit=_limit(request, event_filter),
            event_filter=event_filter,
        )
        return json_response(body)

    async def get_context(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        event_filter = _event_filter(request)
        body = await self._reading.context(
            requester,
            request.match_info["roomId"],
            request.match_info["eventId"],
            limit=_limit(request, event_filter),
            event_filter=event_filter,
        )
        return json_response(body)

    async def timestamp_to_event(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event"""
        requester = await self._auth.require_user(request, allow_guest=True)
        raw_ts = required_query_string(request, "ts")
        # spec: both are required
        required_query_string(request, "dir")
        direction = query_choice(request, "dir", "f", ("b", "f"))
        ts = parse_int_param("ts", raw_ts)
        body = await self._reading.timestamp_to_event(
            requester, request.match_info["roomId"], ts, forwards=direction == "f"
        )
        return json_response(body)

    async def redact(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}, and the legacy
        POST without {txnId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body = await read_body(request, _RedactBody)
        # every POST is a new redaction: a transaction ID no client can repeat
        txn_id = request.match_info.get("txnId") or "legacy-post-" + secrets.token_urlsafe(16)
        event = await self._redacting.redact(
            requester,
            request.match_info["roomId"],
            request.match_info["eventId"],
            txn_id,
            body.reason,
        )
        return json_response({"event_id": event.event_id})

    async def report_event(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _ReportEventBody)
        await self._reports.report_event(
            requester,
            request.match_info["roomId"],
            request.match_info["eventId"],
            body.reason,
            body.score,
        )
        return json_response({})

    async def report_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _ReportRoomBody)
        await self._reports.report_room(requester, request.match_info["roomId"], body.reason)
        return json_response({})
