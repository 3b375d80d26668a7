"""Room membership: spec client-server-api "Room membership" - joining.yaml, inviting.yaml,
leaving.yaml, kicking.yaml, banning.yaml, knocking.yaml, list_joined_rooms.yaml."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import (
    RequestBody,
    json_response,
    read_body,
    read_json_object,
    validate_body,
)
from ranvier.http.ratelimit import Ratelimiter
from ranvier.requester import UserRequester
from ranvier.services.profiles import MAX_AVATAR_URL_LENGTH, MAX_DISPLAYNAME_LENGTH
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.third_party_invites import ThirdPartyInvites

CLIENT = "/_matrix/client/v3"


class _ThirdPartySigned(RequestBody):
    # spec: client-server-api "Joining rooms" - the identity server's signed proof
    sender: str
    mxid: str
    token: str
    signatures: dict[str, dict[str, str]]


class _ReasonBody(RequestBody):
    # unstable keys are ignored, as a join without them; a join's third_party_signed is
    # read by MembershipEndpoints._redeem
    reason: str | None = None


class _JoinBody(_ReasonBody):
    # the other keys of POST /join are kept as member event content (below); these two
    # are checked as a profile would be, since clients show them as the member's name
    displayname: str | None = Field(default=None, max_length=MAX_DISPLAYNAME_LENGTH)
    avatar_url: str | None = Field(default=None, max_length=MAX_AVATAR_URL_LENGTH)


# keys of the join body that are instructions to the server, not member event content
_JOIN_REQUEST_KEYS = ("reason", "third_party_signed")


class _TargetBody(RequestBody):
    user_id: str
    reason: str | None = None


# the keys of the third-party form of POST /rooms/{roomId}/invite (third_party_membership.yaml)
_THIRD_PARTY_INVITE_KEYS = ("id_server", "medium", "address")


class _ThirdPartyBody(RequestBody):
    id_server: str
    id_access_token: str
    medium: str
    address: str


async def _optional_reason(request: web.Request) -> _ReasonBody:
    # Clients often send no body at all to join or leave; Synapse accepts that.
    if not await request.read():
        return _ReasonBody()
    return await read_body(request, _ReasonBody)


async def _raw_join_body(request: web.Request) -> dict[str, Any]:
    return await read_json_object(request) if await request.read() else {}


def _via(request: web.Request) -> list[str]:
    # `server_name` is the name `via` had before Matrix 1.12
    return [*request.query.getall("via", []), *request.query.getall("server_name", [])]


class MembershipEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        membership: MembershipService,
        third_party: ThirdPartyInvites,
        third_party_limit: Ratelimiter | None = None,
    ) -> None:
        self._auth = auth
        self._membership = membership
        self._third_party = third_party
        # rc_third_party_invite, per inviting user
        self._third_party_limit = third_party_limit

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/joined_rooms", self.joined_rooms),
            web.post(CLIENT + "/rooms/{roomId}/join", self.join_room_by_id),
            web.post(CLIENT + "/join/{roomIdOrAlias}", self.join_room),
            web.post(CLIENT + "/knock/{roomIdOrAlias}", self.knock_room),
            web.post(CLIENT + "/rooms/{roomId}/invite", self.invite),
            web.post(CLIENT + "/rooms/{roomId}/leave", self.leave),
            web.post(CLIENT + "/rooms/{roomId}/forget", self.forget),
            web.post(CLIENT + "/rooms/{roomId}/kick", self.kick),
            web.post(CLIENT + "/rooms/{roomId}/ban", self.ban),
            web.post(CLIENT + "/rooms/{roomId}/unban", self.unban),
        ]

    async def joined_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/joined_rooms"""
        requester = await self._auth.require_user(request, allow_guest=True)
        rooms = await self._membership.joined_rooms(requester.user_id)
        return json_response({"joined_rooms": rooms})

    async def join_room_by_id(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/join"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body = await _optional_reason(request)
        room_id = request.match_info["roomId"]
        if not room_id.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", f"{room_id!r} is not a room ID")
        await self._redeem(requester, room_id, await _raw_join_body(request))
        joined = await self._membership.join(requester, room_id, reason=body.reason)
        return json_response({"room_id": joined})

    async def join_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/join/{roomIdOrAlias}"""
        requester = await self._auth.require_user(request, allow_guest=True)
        raw = await _raw_join_body(request)
        body = validate_body(raw, _JoinBody)
        # as Synapse: the body's other keys become the member event's content (SyTest
        # "POST /join/:room_id can join a room with custom content"), a per-room name
        # included; /rooms/{roomId}/join takes only the reason, as there
        extra = {key: value for key, value in raw.items() if key not in _JOIN_REQUEST_KEYS}
        target = request.match_info["roomIdOrAlias"]
        if "third_party_signed" in raw and not target.startswith("!"):
            # the proof names a room's invite: an alias would have to be resolved first
            raise MatrixError(
                400, "M_INVALID_PARAM", "third_party_signed needs the room's ID, not an alias"
            )
        await self._redeem(requester, target, raw)
        room_id = await self._membership.join(
            requester,
            target,
            reason=body.reason,
            via=_via(request),
            extra_content=extra,
        )
        return json_response({"room_id": room_id})

    async def _redeem(self, requester: UserRequester, room_id: str, raw: dict[str, Any]) -> None:
        """A join's third_party_signed, checked for shape, then handed over as sent: every
        key of it is covered by the identity server's signatures."""
        signed = raw.get("third_party_signed")
        if signed is None:
            return
        validate_body(signed, _ThirdPartySigned)
        await self._third_party.redeem_on_join(requester, room_id, signed)

    async def knock_room(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/knock/{roomIdOrAlias}"""
        requester = await self._auth.require_user(request)
        body = await _optional_reason(request)
        room_id = await self._membership.knock(
            requester, request.match_info["roomIdOrAlias"], reason=body.reason, via=_via(request)
        )
        return json_response({"room_id": room_id})

    async def invite(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/invite"""
        requester = await self._auth.require_user(request)
        raw = await read_json_object(request)
        if "user_id" not in raw and any(key in raw for key in _THIRD_PARTY_INVITE_KEYS):
            third_party = validate_body(raw, _ThirdPartyBody)
            if self._third_party_limit is not None:
                self._third_party_limit.check_user(requester)
            await self._third_party.invite(
                requester,
                request.match_info["roomId"],
                id_server=third_party.id_server,
                id_access_token=third_party.id_access_token,
                medium=third_party.medium,
                address=third_party.address,
            )
            return json_response({})
        body = validate_body(raw, _TargetBody)
        await self._membership.invite(
            requester, request.match_info["roomId"], body.user_id, reason=body.reason
        )
        return json_response({})

    async def leave(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/leave"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body = await _optional_reason(request)
        await self._membership.leave(requester, request.match_info["roomId"], reason=body.reason)
        return json_response({})

    async def forget(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/forget"""
        requester = await self._auth.require_user(request)
        await _optional_reason(request)
        await self._membership.forget(requester, request.match_info["roomId"])
        return json_response({})

    async def kick(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/kick"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _TargetBody)
        await self._membership.kick(
            requester, request.match_info["roomId"], body.user_id, reason=body.reason
        )
        return json_response({})

    async def ban(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/ban"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _TargetBody)
        await self._membership.ban(
            requester, request.match_info["roomId"], body.user_id, reason=body.reason
        )
        return json_response({})

    async def unban(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/unban"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _TargetBody)
        await self._membership.unban(
            requester, request.match_info["roomId"], body.user_id, reason=body.reason
        )
        return json_response({})
