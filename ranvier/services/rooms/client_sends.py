"""Clients sending messages and state into rooms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.requester import UserRequester
from ranvier.services.rooms.errors import as_matrix_error
from ranvier.services.rooms.sender import RoomEventSender, Txn

# state the client API must not set directly: membership has its own endpoints
MEMBERSHIP_EVENT = "m.room.member"

# (requester, room_id, state_key, content): raises MatrixError to refuse a state event that
# is valid to the auth rules but not to the client API (e.g. m.room.canonical_alias naming
# aliases of other rooms)
StateValidator = Callable[[UserRequester, str, str, dict[str, Any]], Awaitable[None]]
# (requester, room_id, event_type, content): the same for message events (e.g. a thread
# started off an event that itself relates to another)
MessageValidator = Callable[[UserRequester, str, str, dict[str, Any]], Awaitable[None]]


class EventSendingService:
    def __init__(self, sender: RoomEventSender) -> None:
        self._sender = sender
        self._state_validators: dict[str, list[StateValidator]] = {}
        self._message_validators: list[MessageValidator] = []

    def add_state_validator(self, event_type: str, validator: StateValidator) -> None:
        self._state_validators.setdefault(event_type, []).append(validator)

    def add_message_validator(self, validator: MessageValidator) -> None:
        self._message_validators.append(validator)

    async def send_message(
        self,
        requester: UserRequester,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn_id: str,
    ) -> Event:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}: idempotent per device and txn ID."""
        for validator in self._message_validators:
            await validator(requester, room_id, event_type, content)
        template = EventTemplate(event_type, requester.user_id, content, room_id)
        endpoint = f"send/{room_id}/{event_type}"
        return await self.send(template, txn=self.txn(requester, endpoint, txn_id))

    async def send_state(
        self,
        requester: UserRequester,
        room_id: str,
        event_type: str,
        state_key: str,
        content: dict[str, Any],
    ) -> Event:
        if event_type == MEMBERSHIP_EVENT and state_key != requester.user_id:
            # spec: membership of others changes through invite/kick/ban, which check more
            raise MatrixError(
                403, "M_FORBIDDEN", "Use the invite, kick and ban endpoints for other members"
            )
        for validator in self._state_validators.get(event_type, []):
            await validator(requester, room_id, state_key, content)
        template = EventTemplate(event_type, requester.user_id, content, room_id, state_key)
        return await self.send(template)

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
        the device (the token, without one) and to the endpoint, i.e. its path."""
        scope = requester.device_id or f"token:{requester.access_token_id}"
        return (requester.user_id, scope, endpoint, txn_id)
