"""Creating rooms and sending events into them: spec client-server-api "Rooms",
create_room.yaml, room_send.yaml, room_state.yaml."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object
from ranvier.http.ratelimit import Ratelimiter, Ratelimiters
from ranvier.requester import UserRequester
from ranvier.services.rooms.client_sends import EventSendingService
from ranvier.services.rooms.room_creation import (
    CreateRoomRequest,
    InitialStateEvent,
    RoomCreationService,
)
from ranvier.services.third_party_invites import ThirdPartyInvites

CLIENT = "/_matrix/client/v3"
# the largest origin_server_ts the spec allows: canonical JSON's integer range
MAX_TIMESTAMP = 2**53 - 1


def massaged_timestamp(request: web.Request, requester: UserRequester) -> int | None:
    """The `ts` an application service gives its send (spec: application-service-api
    "Timestamp massaging"); None for anyone else, whose `ts` is ignored as Synapse does."""
    if requester.app_service is None:
        return None
    value = request.query.get("ts")
    if value is None:
        return None
    if not value.isdigit() or int(value) > MAX_TIMESTAMP:
        raise MatrixError(
            400, "M_INVALID_PARAM", "'ts' must be a timestamp in milliseconds since the epoch"
        )
    return int(value)


class _InitialStateBody(RequestBody):
    type: str
    state_key: str = ""
    content: dict[str, Any]


class _ThirdPartyInviteBody(RequestBody):
    id_server: str
    id_access_token: str
    medium: str
    address: str


class _CreateRoomBody(RequestBody):
    visibility: Literal["public", "private"] = "private"
    preset: Literal["private_chat", "trusted_private_chat", "public_chat"] | None = None
    room_version: str | None = None
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = Field(default_factory=list)
    invite_3pid: list[_ThirdPartyInviteBody] = Field(default_factory=list)
    is_direct: bool = False
    creation_content: dict[str, Any] = Field(default_factory=dict)
    initial_state: list[_InitialStateBody] = Field(default_factory=list)
    power_level_content_override: dict[str, Any] | None = None


class RoomEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        creation: RoomCreationService,
        sending: EventSendingService,
        third_party_invites: ThirdPartyInvites,
        ratelimiters: Ratelimiters | None = None,
        third_party_limit: Ratelimiter | None = None,
    ) -> None:
        self._auth = auth
        self._creation = creation
        self._sending = sending
        self._third_party_invites = third_party_invites
        self._ratelimiters = ratelimiters
        # rc_third_party_invite, per inviting user, as POST /rooms/{roomId}/invite counts it
        self._third_party_limit = third_party_limit

    def _ratelimit(self, requester: UserRequester) -> None:
        # rc_message, per user as Synapse; counted once the body is known to be usable
        if self._ratelimiters is not None:
            self._ratelimiters.check_message(requester)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(CLIENT + "/createRoom", self.create_room),
            web.put(CLIENT + "/rooms/{roomId}/send/{eventType}/{txnId}", self.send_message),
            web.put(CLIENT + "/rooms/{roomId}/state/{eventType}/{stateKey}", self.send_state),
            # spec: an empty state key may be left out of the path (with or without the slash)
            web.put(CLIENT + "/rooms/{roomId}/state/{eventType}", self.send_state),
            web.put(CLIENT + "/rooms/{roomId}/state/{eventType}/", self.send_state),
        ]

    async def create_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/createRoom"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _CreateRoomBody)
        # invite_3pid is refused or counted before the room exists, so a refusal leaves none
        for invitee in body.invite_3pid:
            self._third_party_invites.check_request(invitee.id_server, invitee.medium)
            if self._third_party_limit is not None:
                self._third_party_limit.check_user(requester)
        room_id = await self._creation.create_room(
            requester,
            CreateRoomRequest(
                visibility=body.visibility,
                preset=body.preset,
                room_version=body.room_version,
                room_alias_name=body.room_alias_name,
                name=body.name,
                topic=body.topic,
                invite=body.invite,
                is_direct=body.is_direct,
                creation_content=body.creation_content,
                initial_state=[
                    InitialStateEvent(s.type, s.state_key, s.content) for s in body.initial_state
                ],
                power_level_content_override=body.power_level_content_override,
            ),
        )
        # As Synapse, after the room and its other invites: each address is looked up, and
        # invited or left an m.room.third_party_invite (an identity server's refusal fails
        # the request, the room staying)
        for invitee in body.invite_3pid:
            await self._third_party_invites.invite(
                requester,
                room_id,
                id_server=invitee.id_server,
                id_access_token=invitee.id_access_token,
                medium=invitee.medium,
                address=invitee.address,
            )
        return json_response({"room_id": room_id})

    async def send_message(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        content = await read_json_object(request)
        self._ratelimit(requester)
        event = await self._sending.send_message(
            requester,
            request.match_info["roomId"],
            request.match_info["eventType"],
            content,
            request.match_info["txnId"],
            origin_server_ts=massaged_timestamp(request, requester),
        )
        return json_response({"event_id": event.event_id})

    async def send_state(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
        requester = await self._auth.require_user(request)
        content = await read_json_object(request)
        self._ratelimit(requester)
        event = await self._sending.send_state(
            requester,
            request.match_info["roomId"],
            request.match_info["eventType"],
            request.match_info.get("stateKey", ""),
            content,
            origin_server_ts=massaged_timestamp(request, requester),
        )
        return json_response({"event_id": event.event_id})
