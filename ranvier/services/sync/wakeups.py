"""Telling the notifier about new room events, once they can be read.

The room sender reports each persisted batch with the stream position up to which
everything has committed. Batches of different rooms commit in parallel, so a batch may
finish while one below it is still in flight: its events are not readable yet, and a sync
woken now would not find them. Such a batch waits here until the position covers its
events, and wakes its rooms then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ranvier.protocol.events import Event
from ranvier.storage import events as event_store
from ranvier.storage.database import Database
from ranvier.streams.notifier import Notifier
from ranvier.streams.positions import StreamPositions
from ranvier.streams.sync_token import EVENTS


@dataclass
class _Pending:
    ceiling: int
    rooms: set[str]
    users: set[str]


class RoomEventWakeups:
    def __init__(self, db: Database, notifier: Notifier, positions: StreamPositions) -> None:
        self._db = db
        self._notifier = notifier
        self._positions = positions
        self._pending: list[_Pending] = []

    async def on_persisted(self, events: Sequence[Event], current: int) -> None:
        # an invitee or a kicked user is not in the room's waiters yet (or any more)
        users = {
            event.state_key
            for event in events
            if event.type == "m.room.member" and event.state_key is not None
        }
        ceiling = current
        if self._positions.allocated > current:
            # something is in flight: is it below this batch? (rare outside heavy load)
            found = await event_store.get_stream_orderings(self._db, [e.event_id for e in events])
            ceiling = max(found.values(), default=current)
        self._pending.append(_Pending(ceiling, {event.room_id for event in events}, users))
        ready = [p for p in self._pending if p.ceiling <= current]
        if not ready:
            return
        self._pending = [p for p in self._pending if p.ceiling > current]
        rooms = set().union(*(p.rooms for p in ready))
        users = set().union(*(p.users for p in ready))
        self._notifier.notify(EVENTS, current, rooms=rooms, users=users)
