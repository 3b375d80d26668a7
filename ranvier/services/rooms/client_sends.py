"""Clients sending messages and state into rooms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.requester import UserRequester
from ranvier.services.rooms.errors import as_matrix_error
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound, Txn

# state the client API must not set directly: membership has its own endpoints
MEMBERSHIP_EVENT = "m.room.member"
TOMBSTONE_EVENT = "m.room.tombstone"
# as Synapse, a ban, kick or unban may be written as the target's member state; the auth
# rules decide it exactly as for /ban and /kick (SyTest bans remote users this way)
_OTHERS_MEMBERSHIP_BY_STATE = ("ban", "leave")

# (requester, room_id, state_key, content): raises MatrixError to refuse a state event that
# is valid to the auth rules but not to the client API (e.g. m.room.canonical_alias naming
# aliases of other rooms)
StateValidator = Callable[[UserRequester, str, str, dict[str, Any]], Awaitable[None]]
# (requester, room_id, event_type, content): the same for message events (e.g. a thread
# started off an event that itself relates to another)
MessageValidator = Callable[[UserRequester, str, str, dict[str, Any]], Awaitable[None]]
# what a state event sent by a client sets off, before the client is answered (e.g. guests
# leaving when guest access is revoked)
StateFollowUp = Callable[[Event], Awaitable[None]]
# (requester, template): an event to answer with instead of sending, or None to send (a
# shadow-banned user's sends look made and are not)
SendInterceptor = Callable[[UserRequester, EventTemplate], Awaitable[Event | None]]


class EventSendingService:
    def __init__(self, sender: RoomEventSender) -> None:
        self._sender = sender
        self._state_validators: dict[str, list[StateValidator]] = {}
        self._message_validators: list[MessageValidator] = []
        self._state_follow_ups: dict[str, list[StateFollowUp]] = {}
        self._interceptors: list[SendInterceptor] = []

    def add_state_validator(self, event_type: str, validator: StateValidator) -> None:
        self._state_validators.setdefault(event_type, []).append(validator)

    def add_state_follow_up(self, event_type: str, follow_up: StateFollowUp) -> None:
        self._state_follow_ups.setdefault(event_type, []).append(follow_up)

    def add_message_validator(self, validator: MessageValidator) -> None:
        self._message_validators.append(validator)

    def add_interceptor(self, interceptor: SendInterceptor) -> None:
        self._interceptors.append(interceptor)

    async def _intercepted(self, requester: UserRequester, template: EventTemplate) -> Event | None:
        for interceptor in self._interceptors:
            stand_in = await interceptor(requester, template)
            if stand_in is not None:
                return stand_in
        return None

    async def send_message(
        self,
        requester: UserRequester,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn_id: str,
        *,
        origin_server_ts: int | None = None,
    ) -> Event:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}: idempotent per device and txn ID.
        `origin_server_ts`: an application service's `ts`, else now."""
        if event_type == TOMBSTONE_EVENT:
            # as Synapse: a tombstone is only meaningful as the room's state
            raise MatrixError(400, "M_BAD_JSON", "m.room.tombstone must be sent as a state event")
        for validator in self._message_validators:
            await validator(requester, room_id, event_type, content)
        template = EventTemplate(
            event_type, requester.user_id, content, room_id, origin_server_ts=origin_server_ts
        )
        stand_in = await self._intercepted(requester, template)
        if stand_in is not None:
            return stand_in
        endpoint = f"send/{room_id}/{event_type}"
        return await self.send(template, txn=self.txn(requester, endpoint, txn_id))

    async def send_state(
        self,
        requester: UserRequester,
        room_id: str,
        event_type: str,
        state_key: str,
        content: dict[str, Any],
        *,
        origin_server_ts: int | None = None,
    ) -> Event:
        if (
            event_type == MEMBERSHIP_EVENT
            and state_key != requester.user_id
            and content.get("membership") not in _OTHERS_MEMBERSHIP_BY_STATE
        ):
            # invites (and joins) of others go through their endpoint, which checks more
            raise MatrixError(403, "M_FORBIDDEN", "Use the invite endpoint to invite other members")
        if event_type == TOMBSTONE_EVENT:
            _check_tombstone(room_id, content)
        for validator in self._state_validators.get(event_type, []):
            await validator(requester, room_id, state_key, content)
        existing = await self._same_state(
            requester.user_id, room_id, event_type, state_key, content
        )
        if existing is not None:
            # as Synapse: setting the state it already has, as its sender, changes nothing
            # and answers with the event there (SyTest "Setting state twice is idempotent")
            return existing
        template = EventTemplate(
            event_type,
            requester.user_id,
            content,
            room_id,
            state_key,
            origin_server_ts=origin_server_ts,
        )
        if event_type != MEMBERSHIP_EVENT:
            stand_in = await self._intercepted(requester, template)
            if stand_in is not None:
                return stand_in
        event = await self.send(template)
        for follow_up in self._state_follow_ups.get(event_type, []):
            await follow_up(event)
        return event

    async def _same_state(
        self, sender: str, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> Event | None:
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            return None  # the send refuses it
        event_id = head.state.get((event_type, state_key))
        member_id = head.state.get((MEMBERSHIP_EVENT, sender))
        if event_id is None or member_id is None:
            return None
        loaded = await self._sender.loader.get_events([event_id, member_id])
        current, member = loaded.get(event_id), loaded.get(member_id)
        # only for a member still in the room: anyone else is refused by the send
        if member is None or member.membership != "join":
            return None
        if current is None or current.sender != sender or current.content != content:
            return None
        return current

    async def send(self, template: EventTemplate, txn: Txn | None = None) -> Event:
        """Send through the room pipeline; refusals become the client's Matrix error."""
        try:
            return await self._sender.send(template, txn)
        except Exception as exc:
            error = as_matrix_error(exc)
            if error is None:
                raise
            raise error from None

    @staticmethod
    def txn(requester: UserRequester, endpoint: str, txn_id: str) -> Txn:
        """The idempotency key of a client send. spec: "Transaction identifiers" - scoped to
        the device (without one: the token, or the application service acting) and to the
        endpoint, i.e. its path."""
        scope = requester.device_id or (
            f"appservice:{requester.app_service.id}"
            if requester.app_service is not None
            else f"token:{requester.access_token_id}"
        )
        return (requester.user_id, scope, endpoint, txn_id)


def _check_tombstone(room_id: str, content: dict[str, Any]) -> None:
    # spec: m.room.tombstone - replacement_room is required; as Synapse, a room cannot be
    # replaced by itself (clients following the link would loop)
    replacement = content.get("replacement_room")
    if not isinstance(replacement, str):
        raise MatrixError(400, "M_BAD_JSON", "m.room.tombstone needs a replacement_room")
    if replacement == room_id:
        raise MatrixError(
            400, "M_BAD_JSON", "A tombstone cannot name the room it is sent in as replacement"
        )
