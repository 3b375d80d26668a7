"""Which redactions apply to which events.

spec: client-server-api "Redactions": a redaction is stored whatever its sender's power
(room versions 3+ let any member send one), but it only takes effect when the redacter is
the original sender or has the room's `redact` level at the redaction. Events are stored as
received; the pruned form is made when an event is served.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cachetools import Cache

from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import PowerLevels
from ranvier.services.rooms.event_loader import EventLoader, bounded_cache
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

REDACTION = "m.room.redaction"


class Redactions:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        *,
        cache_size: int = 10_000,
        cache_ttl_seconds: float | None = None,
    ) -> None:
        self._db = db
        self._loader = loader
        # event ID -> the redaction that applies to it, or None: most events have none
        self._event_id_to_redaction_id: Cache[str, str | None] = bounded_cache(
            "redactions", cache_size, cache_ttl_seconds
        )
        # bumped on every new redaction, so a lookup racing with one does not cache stale
        self._generation = 0

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """RoomEventSender callback: a new redaction changes what its target looks like."""
        for event in events:
            if event.type == REDACTION and event.redacts is not None:
                self._generation += 1
                self._event_id_to_redaction_id.pop(event.redacts, None)

    async def applied(self, events: Iterable[Event]) -> dict[str, Event]:
        """event ID -> the redaction event that applies to it, for those that are redacted."""
        by_id = {event.event_id: event for event in events}
        result: dict[str, Event] = {}
        unknown: list[str] = []
        for event_id in by_id:
            if event_id in self._event_id_to_redaction_id:
                redaction_id = self._event_id_to_redaction_id[event_id]
                if redaction_id is not None:
                    redaction = await self._loader.get_event(redaction_id)
                    if redaction is not None:
                        result[event_id] = redaction
            else:
                unknown.append(event_id)
        if not unknown:
            return result
        generation = self._generation
        candidates = await event_store.get_redactions_of(self._db, unknown)
        loaded = await self._loader.get_events(
            redaction_id for ids in candidates.values() for redaction_id in ids
        )
        found: dict[str, str | None] = {event_id: None for event_id in unknown}
        for event_id, redaction_ids in candidates.items():
            for redaction_id in redaction_ids:
                redaction = loaded.get(redaction_id)
                if redaction is not None and await self._takes_effect(redaction, by_id[event_id]):
                    found[event_id] = redaction_id
                    result[event_id] = redaction
                    break
        if generation == self._generation:
            self._event_id_to_redaction_id.update(found)
        return result

    async def _takes_effect(self, redaction: Event, target: Event) -> bool:
        if redaction.rejected_reason is not None or redaction.room_id != target.room_id:
            return False
        # rooms v1 and v2 let a sender choose event IDs: a redaction of itself, or two that
        # redact each other, would each hide what decides whether it applies
        if redaction.event_id == target.event_id:
            return False
        if target.type == REDACTION and target.redacts == redaction.event_id:
            return False
        if redaction.sender == target.sender:
            return True
        return await self.may_redact_others(redaction)

    async def may_redact_others(self, redaction: Event) -> bool:
        """Whether the redaction's sender had the `redact` level in the state at it."""
        groups = await state_store.get_event_state_groups(self._db, [redaction.event_id])
        group = groups.get(redaction.event_id)
        if group is None:
            return False
        return await self.has_redact_level(
            redaction.sender, await self._loader.get_state_group(group)
        )

    async def has_redact_level(self, user_id: str, state: dict[tuple[str, str], str]) -> bool:
        ids = [
            event_id
            for key in (("m.room.create", ""), ("m.room.power_levels", ""))
            if (event_id := state.get(key)) is not None
        ]
        loaded = await self._loader.get_events(ids)
        create = loaded.get(state.get(("m.room.create", ""), ""))
        power = loaded.get(state.get(("m.room.power_levels", ""), ""))
        if create is None:
            return False
        levels = PowerLevels.from_events(create.room_version, create, power)
        return levels.user_level(user_id) >= levels.redact
