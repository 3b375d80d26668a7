"""What a batch of events becomes before it is written, shared by the two ways events enter
a room: local sends (sender.py) and events from other servers (federated_persistence.py).
The room sender writes both kinds with one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ranvier.protocol.event_builder import PrevEvent
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion
from ranvier.storage.state import StateKey, StateMap

# a local event names at most this many forward extremities as its prev_events (the
# deepest ones), which merges forks as the room goes on
MAX_PREV_EVENTS = 10
# a fresh full snapshot after this many deltas keeps state loads to one short chain
MAX_STATE_CHAIN_LENGTH = 50

Txn = tuple[str, str, str, str]  # user_id, device_id, endpoint, txn_id
# a state group to insert: (its base group, its chain length, its delta against the base)
NewStateGroup = tuple[int | None, int, dict[StateKey, str | None]]
# a current-state change: the new event and its membership, or None when the key goes
StateChanges = Mapping[StateKey, tuple[str, str | None] | None]


class RoomNotFound(Exception):
    pass


@dataclass
class IdCounter:
    value: int

    def next(self) -> int:
        self.value += 1
        return self.value


@dataclass
class RoomHead:
    """What the next event in a room is built on."""

    room_version: RoomVersion
    # the forward extremities a new event names as prev_events (at most MAX_PREV_EVENTS)
    extremities: list[PrevEvent]
    # the room's current state: the extremities' states, resolved if they disagree
    state: StateMap
    # the state group holding `state`; None when it is a resolution no group holds yet
    # (the next event's group is then a full snapshot)
    state_group: int | None
    chain_length: int
    # the room's other forward extremities, beyond the deepest MAX_PREV_EVENTS: no event
    # of ours names them, so they stay extremities
    unnamed_extremities: list[str] = field(default_factory=list)


@dataclass
class BuiltEvent:
    event: Event
    txn: Txn | None
    # the state after the event; None for an outlier
    state_group: int | None
    new_group: NewStateGroup | None = None
    future: asyncio.Future[Event] | None = None
    outlier: bool = False
    soft_failed: bool = False
    rejected_reason: str | None = None
    # stored as an outlier before: its row is updated, not inserted
    promoted: bool = False

    @property
    def in_timeline(self) -> bool:
        """Whether clients see it: it then takes a position in the room-events stream."""
        return not self.outlier and not self.soft_failed and self.rejected_reason is None


class CommitBatch(Protocol):
    """Writes a batch in one transaction (RoomEventSender._commit)."""

    def __call__(
        self,
        room_id: str,
        room_version: RoomVersion,
        built: list[BuiltEvent],
        *,
        extremities: Sequence[str],
        state_after: StateMap,
        changes: StateChanges,
        new_room: tuple[str, bool] | None = None,
        backfilled: bool = False,
        resolved_members: Sequence[Event] = (),
    ) -> Awaitable[None]: ...
