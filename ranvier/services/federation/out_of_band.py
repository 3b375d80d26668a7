"""Out-of-band memberships: a local user's invite, knock or leave in a room this server is
not in (spec: server-server-api "Inviting to a room", "Knocking upon a room", "Leaving
Rooms (Rejecting Invites)").

The event is kept as an outlier (no state, in no timeline) but with a membership row at
a real position of the room-events stream, so that the user's /sync lists the room under
invite, knock or leave. What the inviting or resident server told us of the room (the
stripped state) travels in the event's `unsigned`, under `invite_room_state` or
`knock_room_state`, which no signature or hash covers; /sync strips each entry to the
client's form (services/sync/state.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ranvier.clock import now_ms
from ranvier.protocol.events import Event
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import events as event_store
from ranvier.storage import memberships as membership_store
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.events import EventRow
from ranvier.storage.memberships import MembershipRow

INVITE_ROOM_STATE = "invite_room_state"
KNOCK_ROOM_STATE = "knock_room_state"


def with_stripped_state(event: Event, key: str, stripped: Sequence[Mapping[str, Any]]) -> Event:
    """`event` with `stripped` kept in its unsigned under `key`."""
    pdu = dict(event.pdu)
    unsigned = pdu.get("unsigned")
    pdu["unsigned"] = {**(unsigned if isinstance(unsigned, dict) else {}), key: list(stripped)}
    return Event(pdu, event.room_version, event.event_id)


def usable_stripped_state(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """The entries of a remote server's invite or knock state a client can be shown: JSON
    objects with a string type and state_key and an object content; others are dropped
    (spec: entries improperly formatted SHOULD be removed before clients see them)."""
    kept: list[dict[str, Any]] = []
    for entry in entries:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("type"), str)
            and isinstance(entry.get("state_key"), str)
            and isinstance(entry.get("content"), dict)
        ):
            kept.append(entry)
    return kept


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


class OutOfBandMemberships:
    def __init__(self, sender: RoomEventSender, server_name: str) -> None:
        self._sender = sender
        self._db = sender.db
        self._server_name = server_name

    async def in_room(self, room_id: str) -> bool:
        """Whether a user of this server is joined to the room, so that the room's other
        servers send its events here and a membership goes through the room rather than
        out of band."""
        members = await state_store.get_members(self._db, room_id)
        return any(_domain(member) == self._server_name for member in members)

    async def latest(self, room_id: str, user_id: str) -> Event | None:
        """The user's newest membership event in the room, out of band or not."""
        history = await membership_store.get_membership_history(self._db, room_id, user_id)
        if history.latest_event_id is None:
            return None
        return await self._sender.loader.get_event(history.latest_event_id)

    async def store(self, event: Event, *, creator: str | None = None) -> None:
        """Persist `event`, a membership of a local user, out of band; again is a no-op.

        The room gets a private row if it has none, with `creator` (else the event's
        sender) as creator, so the event can be read with its room version."""
        assert event.state_key is not None
        if await self._sender.loader.get_event(event.event_id) is not None:
            return
        sender = self._sender
        positions = sender.positions.allocate(1)
        now = now_ms()
        try:
            async with self._db.transaction() as conn:
                await room_store.ensure_room(
                    conn,
                    event.room_id,
                    event.room_version.identifier,
                    creator or event.sender,
                    now,
                )
                await event_store.insert_events(conn, [_outlier_row(event, positions[0], now)])
                await membership_store.insert_memberships(
                    conn,
                    [
                        MembershipRow(
                            event.event_id,
                            event.room_id,
                            event.state_key,
                            event.sender,
                            event.membership or "",
                            positions[0],
                        )
                    ],
                )
            sender.room_changes.record(event.room_id, positions[0])
            sender.member_changes.record(event.state_key, positions[0])
        finally:
            current = sender.positions.finish(positions)
        sender.loader.remember([event])
        # wakes the user's long-polls (the event names them as state_key)
        await sender.listeners([event], current)


def _outlier_row(event: Event, position: int, now: int) -> EventRow:
    return EventRow(
        event_id=event.event_id,
        room_id=event.room_id,
        pdu=event.pdu,
        type=event.type,
        state_key=event.state_key,
        sender=event.sender,
        depth=event.depth,
        origin_server_ts=event.origin_server_ts,
        prev_event_ids=event.prev_event_ids,
        auth_event_ids=event.auth_event_ids,
        stream_ordering=position,
        received_ts=now,
        outlier=True,
    )
