"""Events from other servers entering a room: checked by the caller, they get state groups,
move the forward extremities and, when the extremities' states disagree, the room's current
state becomes their resolution (protocol/state_res). Outliers, soft-failed and rejected
events are stored without entering any timeline.

The room sender runs this in the room's queue, so remote and local events to one room are
serialised, and writes what it plans with the same commit as local sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ranvier.protocol.event_builder import PrevEvent
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.state_res import resolve_state
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.persist_batch import (
    MAX_PREV_EVENTS,
    MAX_STATE_CHAIN_LENGTH,
    BuiltEvent,
    CommitBatch,
    IdCounter,
    NewStateGroup,
    RoomHead,
    RoomNotFound,
)
from ranvier.storage import events as event_store
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateKey, StateMap


@dataclass(frozen=True)
class FederatedEvent:
    """An event from another server, checked by the caller, and what to persist it as."""

    event: Event  # passed the format, signature and hash checks
    # the room's state before the event; None for an outlier
    state_before: StateMap | None
    # kept for its auth or state role only: in no timeline, stream or sync
    outlier: bool = False
    # in the DAG, never served to clients, never a prev event of ours
    soft_failed: bool = False
    # failed the auth rules: stored so that it is not fetched again, never served
    rejected_reason: str | None = None


@dataclass
class FederatedWork:
    room_version: RoomVersion
    items: Sequence[FederatedEvent]
    new_room: bool
    future: asyncio.Future[None]
    backfilled: bool = False


class FederatedPersistence:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        state_group_ids: IdCounter,
        commit_batch: CommitBatch,
    ) -> None:
        self._db = db
        self._loader = loader
        self._state_group_ids = state_group_ids
        self._commit_batch = commit_batch

    async def persist(
        self, room_id: str, work: FederatedWork, head: RoomHead | None
    ) -> RoomHead | None:
        """Write `work`'s events into the room (see RoomEventSender.persist_federated).
        `head`: the room's head as the sender holds it, if it does (its state and
        extremities are the room's, so they need not be read). Returns the room's head
        after the events, or None when it is to be read from the database."""
        version = work.room_version
        known_room = head is not None or await room_store.get_room(self._db, room_id) is not None
        if work.new_room and not known_room:
            old_extremities: list[str] = []
            old_state: StateMap = {}
            new_room: tuple[str, bool] | None = (_creator(work.items), False)
        else:
            if not known_room:
                raise RoomNotFound(room_id)
            if head is not None:
                old_extremities = [
                    *head.unnamed_extremities,
                    *(prev.event_id for prev in head.extremities),
                ]
                old_state = head.state
            else:
                old_extremities = [
                    eid for eid, _ in await event_store.get_forward_extremities(self._db, room_id)
                ]
                old_state = await state_store.get_current_state_ids(self._db, room_id)
            new_room = None
        # events stored before are skipped, but an outlier may now take its place in the
        # room (its prev events became known): its row is promoted
        stored = await event_store.get_outlier_flags(
            self._db, (item.event.event_id for item in work.items)
        )
        items = [
            item
            for item in work.items
            if item.event.event_id not in stored
            or (stored[item.event.event_id] and not item.outlier and item.state_before is not None)
        ]
        if not items:
            return head
        batch_events = {item.event.event_id: item.event for item in items}
        built: list[BuiltEvent] = []
        # state after each non-outlier of the batch, and its group's chain length
        state_after: dict[str, StateMap] = {}
        group_of: dict[str, int] = {}
        chain_of_group: dict[int, int] = {}
        extremities = list(old_extremities)
        # soft-failed or rejected events of the batch
        hidden_in_batch: set[str] = set()
        for item in items:
            event = item.event
            event.rejected_reason = item.rejected_reason
            if item.outlier or item.state_before is None:
                built.append(
                    BuiltEvent(
                        event, None, None, outlier=True, rejected_reason=item.rejected_reason
                    )
                )
                continue
            after = dict(item.state_before)
            if event.is_state() and item.rejected_reason is None:
                after[(event.type, event.state_key or "")] = event.event_id
            group, new_group = await self._group_for(
                event, after, state_after, group_of, chain_of_group
            )
            state_after[event.event_id] = after
            group_of[event.event_id] = group
            if new_group is not None:
                chain_of_group[group] = new_group[1]
            item_built = BuiltEvent(
                event,
                None,
                group,
                new_group,
                soft_failed=item.soft_failed,
                rejected_reason=item.rejected_reason,
                promoted=event.event_id in stored,
            )
            built.append(item_built)
            if not item_built.in_timeline:
                hidden_in_batch.add(event.event_id)
            elif not work.backfilled:
                displaced = await self._displaced(
                    event, hidden_in_batch, batch_events, set(extremities)
                )
                extremities = [eid for eid in extremities if eid not in displaced]
                extremities.append(event.event_id)
        if work.backfilled:
            self._loader.remember(batch_events.values())
            await self._commit_batch(
                room_id,
                version,
                built,
                extremities=extremities,
                state_after=old_state,
                changes={},
                backfilled=True,
            )
            self._remember_groups(built, state_after)
            # old history moves neither the extremities nor the current state
            return head
        new_state = await self._state_of_extremities(
            version, extremities, state_after, batch_events, old_state
        )
        changes: dict[StateKey, tuple[str, str | None] | None] = {}
        changed: dict[StateKey, str] = {}
        if new_state != old_state:  # (most batches change no state)
            changes = {key: None for key in old_state if key not in new_state}
            changed = {key: eid for key, eid in new_state.items() if old_state.get(key) != eid}
        members = await self._events_by_id(
            [eid for key, eid in changed.items() if key[0] == "m.room.member"], batch_events
        )
        for key, event_id in changed.items():
            member = members.get(event_id)
            changes[key] = (event_id, member.membership if member is not None else None)
        # memberships made current with no event of this batch in the timeline (a fork's
        # resolution, the state at a gap): their rows must move too, or /sync and the
        # history rules would go by the old ones; a room joined just now starts from its
        # state, as it always did
        in_timeline = {item.event.event_id for item in built if item.in_timeline}
        resolved_members = [
            member
            for member in members.values()
            if member.event_id not in in_timeline and new_room is None
        ]
        self._loader.remember(batch_events.values())
        await self._commit_batch(
            room_id,
            version,
            built,
            extremities=extremities,
            state_after=new_state,
            changes=changes,
            new_room=new_room,
            resolved_members=resolved_members,
        )
        self._remember_groups(built, state_after)
        return await self._head_after(
            version, extremities, new_state, group_of, chain_of_group, batch_events, head
        )

    def _remember_groups(
        self, built: Sequence[BuiltEvent], state_after: Mapping[str, StateMap]
    ) -> None:
        """Keep the new state groups in memory: the next event builds on them."""
        for item in built:
            if item.new_group is not None and item.state_group is not None:
                state = state_after.get(item.event.event_id)
                if state is not None:
                    self._loader.remember_state_group(item.state_group, state)

    async def _head_after(
        self,
        version: RoomVersion,
        extremities: Sequence[str],
        state: StateMap,
        group_of: Mapping[str, int],
        chain_of_group: Mapping[int, int],
        batch_events: Mapping[str, Event],
        old_head: RoomHead | None,
    ) -> RoomHead | None:
        """The head RoomEventSender.head would read from what was just written."""
        events = await self._events_by_id(extremities, batch_events)
        if not extremities or len(events) != len(set(extremities)):
            return None  # (no extremities: the sender's head says the room is not here)
        # deepest last, as the store orders them
        ordered = sorted(events, key=lambda eid: (events[eid].depth, eid))
        named = ordered[-MAX_PREV_EVENTS:]
        groups = dict(await self._loader.state_groups_of(e for e in named if e not in group_of))
        groups.update({eid: group_of[eid] for eid in named if eid in group_of})
        distinct = {groups.get(eid) for eid in named}
        group = distinct.pop() if len(distinct) == 1 else None
        if group is None:
            chain = 0
        elif group in chain_of_group:
            chain = chain_of_group[group]
        elif old_head is not None and old_head.state_group == group:
            chain = old_head.chain_length
        else:
            chain = await state_store.get_state_group_chain_length(self._db, group)
        return RoomHead(
            room_version=version,
            extremities=[PrevEvent.of(events[eid]) for eid in named],
            state=dict(state),
            state_group=group,
            chain_length=chain,
            unnamed_extremities=ordered[:-MAX_PREV_EVENTS],
        )

    async def _displaced(
        self,
        event: Event,
        hidden_in_batch: Collection[str],
        batch_events: Mapping[str, Event],
        extremities: Collection[str],
    ) -> set[str]:
        """The forward extremities an accepted event replaces: its prev events and,
        through those soft-failed or rejected (never extremities themselves), their prev
        events in turn. Else an extremity that a soft-failed event built on would stay
        one after the room moved past it (as Synapse's issue 5269)."""
        displaced = set(event.prev_event_ids)
        todo = list(displaced)
        while todo:
            hidden = {eid for eid in todo if eid in hidden_in_batch}
            # an extremity is accepted: the usual event, on one, costs no query
            unknown = [eid for eid in todo if eid not in batch_events and eid not in extremities]
            if unknown:
                hidden |= await event_store.get_unserved_ids(self._db, unknown)
            todo = []
            for hidden_event in (await self._events_by_id(hidden, batch_events)).values():
                for prev_id in hidden_event.prev_event_ids:
                    if prev_id not in displaced:
                        displaced.add(prev_id)
                        todo.append(prev_id)
        return displaced

    async def _group_for(
        self,
        event: Event,
        after: StateMap,
        state_after: Mapping[str, StateMap],
        group_of: Mapping[str, int],
        chain_of_group: Mapping[int, int],
    ) -> tuple[int, NewStateGroup | None]:
        """The state group holding `after`, the state after `event`: its prev event's
        group when the state is the same, else a new group stored as a delta against it
        (or as a full snapshot when there is no base or its chain is long)."""
        base_group: int | None = None
        base_state: Mapping[StateKey, str] = {}
        for prev_id in event.prev_event_ids:
            if prev_id in group_of:
                base_group, base_state = group_of[prev_id], state_after[prev_id]
                break
            groups = await self._loader.state_groups_of([prev_id])
            if prev_id in groups:
                base_group = groups[prev_id]
                base_state = await self._loader.get_state_group(base_group)
                break
        # (a whole-dict comparison first: most events change no state)
        if base_group is not None and after == base_state:
            return base_group, None
        delta: dict[StateKey, str | None] = {
            key: eid for key, eid in after.items() if base_state.get(key) != eid
        }
        delta.update({key: None for key in base_state if key not in after})
        if base_group is not None and not delta:
            return base_group, None
        group = self._state_group_ids.next()
        chain = 0
        if base_group is not None:
            known = chain_of_group.get(base_group)
            chain = (
                known
                if known is not None
                else await state_store.get_state_group_chain_length(self._db, base_group)
            )
        if base_group is None or chain >= MAX_STATE_CHAIN_LENGTH:
            return group, (None, 0, dict(after))
        return group, (base_group, chain + 1, delta)

    async def _state_of_extremities(
        self,
        version: RoomVersion,
        extremities: Sequence[str],
        state_after: Mapping[str, StateMap],
        batch_events: Mapping[str, Event],
        old_state: StateMap,
    ) -> StateMap:
        """The room's current state with these forward extremities: their state when they
        agree, else the resolution of their states with the room version's algorithm."""
        states: list[StateMap] = []
        known = [eid for eid in extremities if eid not in state_after]
        groups = await self._loader.state_groups_of(known)
        for event_id in extremities:
            if event_id in state_after:
                states.append(state_after[event_id])
            elif event_id in groups:
                states.append(await self._loader.get_state_group(groups[event_id]))
        if not states:
            return dict(old_state)
        if all(state == states[0] for state in states[1:]):
            return dict(states[0])

        async def fetch(ids: Collection[str]) -> Mapping[str, Event]:
            return await self._events_by_id(ids, batch_events)

        async def auth_chain(ids: Collection[str]) -> set[str]:
            seen: set[str] = set()
            todo = list(ids)
            while todo:
                loaded = await self._events_by_id(todo, batch_events)
                todo = []
                for event in loaded.values():
                    for auth_id in event.auth_event_ids:
                        if auth_id not in seen:
                            seen.add(auth_id)
                            todo.append(auth_id)
            return seen

        return await resolve_state(version, states, fetch, auth_chain)

    async def _events_by_id(
        self, event_ids: Iterable[str], batch_events: Mapping[str, Event]
    ) -> dict[str, Event]:
        ids = list(dict.fromkeys(event_ids))
        found = {eid: batch_events[eid] for eid in ids if eid in batch_events}
        found.update(await self._loader.get_events(eid for eid in ids if eid not in found))
        return found


def _creator(items: Sequence[FederatedEvent]) -> str:
    for item in items:
        if item.event.type == "m.room.create" and item.event.state_key == "":
            return item.event.sender
    return ""
