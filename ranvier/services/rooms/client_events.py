"""Events as clients see them: spec client-server-api "Room Event Format" (ClientEvent).

A stored PDU carries federation fields (auth_events, hashes, signatures, depth...) that
clients never see. What they see instead is the content (pruned if a redaction applies), and
`unsigned` with the event's age, the previous content of a state key, the redaction that
applies (`redacted_because`), the transaction ID for the sender's own device, and bundled
aggregations (`m.relations`) from the relations service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ranvier.clock import now_ms
from ranvier.protocol.events import Event
from ranvier.protocol.redaction import redact
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.storage.database import Database
from ranvier.storage.erasure import erased_among

REDACTION = "m.room.redaction"


def client_event(
    event: Event,
    *,
    now: int,
    redacted_because: dict[str, Any] | None = None,
    transaction_id: str | None = None,
    previous: Event | None = None,
    relations: Mapping[str, Any] | None = None,
    pruned: bool = False,
) -> dict[str, Any]:
    """The ClientEvent form of one event. Pure: everything it shows is passed in.

    `redacted_because` is the applying redaction already in client form; `previous` is the
    state event this one replaced; `pruned` serves the event as if redacted, without a
    redaction (its sender's data was erased).
    """
    pruned = pruned or redacted_because is not None
    pdu = redact(event.pdu, event.room_version) if pruned else event.pdu
    content = pdu.get("content")
    served: dict[str, Any] = {
        "content": content if isinstance(content, dict) else {},
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "room_id": event.room_id,
        "sender": event.sender,
        "type": event.type,
    }
    if event.is_state():
        served["state_key"] = event.state_key
    if event.type == REDACTION and event.redacts is not None:
        # v11 moved `redacts` into content; clients written for older rooms read it at the
        # top level, so serve it in both places
        served["redacts"] = event.redacts
    unsigned: dict[str, Any] = {"age": max(0, now - event.origin_server_ts)}
    if previous is not None:
        unsigned["replaces_state"] = previous.event_id
        if not pruned:
            unsigned["prev_content"] = previous.content
            unsigned["prev_sender"] = previous.sender
    if redacted_because is not None:
        unsigned["redacted_because"] = redacted_because
        # Synapse's extra, which SyTest and some clients read: the redaction's ID alone
        unsigned["redacted_by"] = redacted_because.get("event_id")
    elif relations and not pruned:
        unsigned["m.relations"] = dict(relations)
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    served["unsigned"] = unsigned
    return served


class ClientEventSerializer:
    def __init__(self, db: Database, loader: EventLoader, redactions: Redactions) -> None:
        self._db = db
        self._loader = loader
        self._redactions = redactions

    async def serialize_events(
        self,
        events: Sequence[Event],
        *,
        requester_user_id: str,
        requester_device_id: str | None = None,
        bundled_aggregations: Mapping[str, Mapping[str, Any]] | None = None,
        include_previous: bool = True,
        hide_erased: bool = True,
    ) -> list[dict[str, Any]]:
        """Client-format events, in the order given, with redactions applied.

        `requester_device_id` names the device whose transaction IDs are shown (spec: only
        to the device that sent the event); `bundled_aggregations` maps an event ID to its
        `m.relations` object. With `hide_erased`, events of erased users are served pruned
        to a requester who was not joined when they were sent (an admin's view passes False).
        """
        if not events:
            return []
        now = now_ms()
        redactions = await self._redactions.applied(events)
        redacted_because: dict[str, dict[str, Any]] = {}
        for event_id, redaction in redactions.items():
            redacted_because[event_id] = client_event(redaction, now=now)
        txn_ids: dict[str, str] = {}
        if requester_device_id is not None:
            own = [event.event_id for event in events if event.sender == requester_user_id]
            txn_ids = await self._loader.txn_ids_of(requester_user_id, requester_device_id, own)
        previous = await self._previous_states(events) if include_previous else {}
        erased = await self._erased_for(events, requester_user_id) if hide_erased else set()
        relations = bundled_aggregations or {}
        return [
            client_event(
                event,
                now=now,
                redacted_because=redacted_because.get(event.event_id),
                transaction_id=txn_ids.get(event.event_id),
                previous=previous.get(event.event_id),
                relations=relations.get(event.event_id),
                pruned=event.event_id in erased,
            )
            for event in events
        ]

    async def serialize_event(
        self, event: Event, *, requester_user_id: str, requester_device_id: str | None = None
    ) -> dict[str, Any]:
        (served,) = await self.serialize_events(
            [event], requester_user_id=requester_user_id, requester_device_id=requester_device_id
        )
        return served

    async def _erased_for(self, events: Sequence[Event], user_id: str) -> set[str]:
        """IDs of the events whose sender was erased and which `user_id` was not joined to
        see when they were sent: as Synapse, a user who deactivated with `erase` stays
        readable to the room-mates who saw their messages, and not to later joiners.

        One indexed query on the senders; the state lookups run only for erased senders.
        """
        erased_senders = await erased_among(
            self._db, {e.sender for e in events if e.sender != user_id}
        )
        if not erased_senders:
            return set()
        affected = [e for e in events if e.sender in erased_senders]
        groups = await self._loader.state_groups_of(e.event_id for e in affected)
        hidden: set[str] = set()
        for event in affected:
            group = groups.get(event.event_id)
            state = await self._loader.get_state_group(group) if group is not None else {}
            member_id = state.get(("m.room.member", user_id))
            member = (
                (await self._loader.get_events([member_id])).get(member_id) if member_id else None
            )
            if member is None or member.membership != "join":
                hidden.add(event.event_id)
        return hidden

    async def _previous_states(self, events: Sequence[Event]) -> dict[str, Event]:
        """state event ID -> the event it replaced under the same key, where there was one."""
        state_events = [event for event in events if event.is_state() and event.prev_event_ids]
        if not state_events:
            return {}
        prev_groups = await self._loader.state_groups_of(
            event.prev_event_ids[0] for event in state_events
        )
        replaced: dict[str, str] = {}
        for event in state_events:
            group = prev_groups.get(event.prev_event_ids[0])
            if group is None:
                continue
            state = await self._loader.get_state_group(group)
            previous_id = state.get((event.type, event.state_key or ""))
            if previous_id is not None and previous_id != event.event_id:
                replaced[event.event_id] = previous_id
        loaded = await self._loader.get_events(replaced.values())
        return {
            event_id: loaded[previous_id]
            for event_id, previous_id in replaced.items()
            if previous_id in loaded
        }
