"""Clients redacting events: PUT /rooms/{roomId}/redact/{eventId}/{txnId}.

The auth rules of room versions 3+ let any member send a redaction; it only takes effect
for the original sender or someone with the `redact` level (see redaction_rules.py). Like
Synapse, a local client is told up front when theirs would not: 404 for an unknown event
they may not redact, 403 for someone else's event without the power.
"""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.requester import UserRequester
from ranvier.services.rooms.client_sends import EventSendingService
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.redaction_rules import REDACTION, Redactions
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound
from ranvier.services.rooms.visibility import not_in_room


class RedactionService:
    def __init__(
        self,
        sender: RoomEventSender,
        sending: EventSendingService,
        loader: EventLoader,
        redactions: Redactions,
    ) -> None:
        self._sender = sender
        self._sending = sending
        self._loader = loader
        self._redactions = redactions

    async def redact(
        self,
        requester: UserRequester,
        room_id: str,
        event_id: str,
        txn_id: str,
        reason: str | None,
    ) -> Event:
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            raise not_in_room() from None
        target = await self._loader.get_event(event_id)
        if target is not None and target.room_id != room_id:
            raise MatrixError(400, "M_INVALID_PARAM", "Cannot redact an event from another room")
        own = target is not None and target.sender == requester.user_id
        if not own and not await self._redactions.has_redact_level(requester.user_id, head.state):
            if target is None:
                raise MatrixError(404, "M_NOT_FOUND", f"Could not find event {event_id}")
            raise MatrixError(403, "M_FORBIDDEN", "You don't have permission to redact events")
        content: dict[str, Any] = {}
        if reason is not None:
            content["reason"] = reason
        redacts: str | None = event_id
        if head.room_version.updated_redaction_rules:
            # spec: rooms/v11 - `redacts` moved into the content
            content["redacts"] = event_id
            redacts = None
        template = EventTemplate(REDACTION, requester.user_id, content, room_id, None, redacts)
        txn = self._sending.txn(requester, f"redact/{room_id}/{event_id}", txn_id)
        return await self._sending.send(template, txn=txn)
