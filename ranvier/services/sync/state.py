"""The `state` section of a room in /sync, and stripped state for invites and knocks.

spec: the state section holds the state at the start of the timeline, after what the
client already has (nothing on a full sync; the state at its token on an incremental
one). Computed with sets of event IDs: what was in force at the timeline's start or end,
minus what the client had, minus what the timeline itself carries. Taking the end into
account matters when the timeline filter hides a state change the client must learn.

Lazy loading (spec: "Lazy-loading room members", and GET /sync's description): a full
state leaves out member events except the timeline's senders', the syncing user's own (so
a client knows its own avatar and name on joining) and the summary's heroes'; an
incremental one keeps every membership change since the token (GET /sync: for the gap of
a limited sync the server MUST send them, redundant or not) and adds the senders' and
heroes' unless the device already holds that very event (`held`, see lazy_members.py).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from ranvier.protocol.events import Event
from ranvier.protocol.filters import RoomEventFilter
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage.database import Database
from ranvier.storage.state import StateKey, StateMap

MEMBER = "m.room.member"
# what an invited or knocking user sees of a room before joining (as Synapse's default
# room_prejoin_state)
STRIPPED_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.name",
    "m.room.topic",
)


def calculate_state(
    *,
    timeline_start: StateMap,
    timeline_end: StateMap,
    previous: StateMap,
    timeline: Iterable[Event],
    lazy_load_members: bool,
    full: bool = False,
    also_members: Iterable[str] = (),
    held: Container[str] = (),
) -> StateMap:
    """The state entries to send; pure. `full`: the client has nothing of the room (an
    initial or full_state sync, or a room it just joined). `also_members`: users whose
    membership a lazy-loading client needs besides the senders' (the syncing user on a
    full state, the heroes). `held`: membership event IDs the client already has, not
    added again for the senders and `also_members` (spec: redundant members)."""
    timeline = list(timeline)
    event_id_to_key: dict[str, StateKey] = {}
    for state in (previous, timeline_end, timeline_start):
        for key, event_id in state.items():
            event_id_to_key[event_id] = key
    in_timeline = {e.event_id for e in timeline}
    wanted = (set(timeline_start.values()) | set(timeline_end.values())) - in_timeline
    wanted -= set(previous.values())
    if lazy_load_members:
        if full:
            wanted = {eid for eid in wanted if event_id_to_key[eid][0] != MEMBER}
        for user_id in {*(e.sender for e in timeline), *also_members}:
            # the membership as the timeline starts, else as it ends
            member = timeline_start.get((MEMBER, user_id)) or timeline_end.get((MEMBER, user_id))
            if member is not None and member not in in_timeline and member not in held:
                wanted.add(member)
    # one entry per key: the timeline's start (what the spec asks for), unless the end
    # differs by an event the timeline does not carry (a filter hid it)
    chosen: StateMap = {}
    for state in (timeline_start, timeline_end):
        for key, event_id in state.items():
            if event_id in wanted:
                chosen[key] = event_id
    return chosen


class StateLoader:
    def __init__(self, db: Database, loader: EventLoader) -> None:
        self._db = db
        self._loader = loader

    async def state_after(self, event_ids: Iterable[str]) -> dict[str, StateMap]:
        """event ID -> the room state after it."""
        groups = await self._loader.state_groups_of(event_ids)
        await self._loader.load_state_groups(groups.values())
        found: dict[str, StateMap] = {}
        for event_id, group in groups.items():
            found[event_id] = await self._loader.get_state_group(group)
        return found

    async def events(self, event_ids: Iterable[str], state_filter: RoomEventFilter) -> list[Event]:
        """The events, in the order given, that the state filter lets through."""
        ids = list(event_ids)
        loaded = await self._loader.get_events(ids)
        return [
            loaded[event_id]
            for event_id in ids
            if event_id in loaded and state_filter.matches(loaded[event_id].pdu)
        ]

    async def stripped_state(self, membership_event_id: str) -> list[dict[str, Any]]:
        """spec: stripped state events for invite_state / knock_state, as of the user's
        membership event, which comes last."""
        state = (await self.state_after([membership_event_id])).get(membership_event_id, {})
        ids = [state[(kind, "")] for kind in STRIPPED_STATE_TYPES if (kind, "") in state]
        own = await self._loader.get_event(membership_event_id)
        if own is not None and own.sender != own.state_key:
            # the inviter's own membership too, as Synapse sends it: clients show who
            # invited the user with its displayname and avatar
            inviter = state.get((MEMBER, own.sender))
            if inviter is not None:
                ids.append(inviter)
        loaded = await self._loader.get_events(ids)
        stripped = [_strip(loaded[event_id]) for event_id in ids if event_id in loaded]
        if not state and own is not None:
            # an out-of-band invite or knock (services/federation/out_of_band.py): no
            # state here, what the other server sent instead
            stripped = _sent_stripped_state(own)
        if own is not None:
            served = _strip(own)
            served["event_id"] = own.event_id
            served["origin_server_ts"] = own.origin_server_ts
            stripped.append(served)
        return stripped


def _sent_stripped_state(event: Event) -> list[dict[str, Any]]:
    """The stripped state another server sent with an invite or knock, kept in the
    event's unsigned, in the client's form; entries not in that form are left out."""
    unsigned = event.pdu.get("unsigned")
    if not isinstance(unsigned, dict):
        return []
    sent = unsigned.get("invite_room_state", unsigned.get("knock_room_state"))
    return [
        {
            "type": entry["type"],
            "state_key": entry["state_key"],
            "sender": entry.get("sender"),
            "content": entry["content"],
        }
        for entry in (sent if isinstance(sent, list) else [])
        if isinstance(entry, dict)
        and isinstance(entry.get("type"), str)
        and isinstance(entry.get("state_key"), str)
        and isinstance(entry.get("content"), dict)
        # the user's own membership comes last, from the event itself
        and not (entry["type"] == MEMBER and entry["state_key"] == event.state_key)
    ]


def _strip(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "state_key": event.state_key,
        "sender": event.sender,
        "content": event.content,
    }
