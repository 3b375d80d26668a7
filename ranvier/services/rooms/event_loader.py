"""Events and state groups by ID, through bounded caches, so hot paths never hit the
database for the same event twice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from cachetools import Cache

from ranvier.metrics import caches as metered_caches
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateMap

V = TypeVar("V")
K = TypeVar("K")


def bounded_cache(name: str, maxsize: int, ttl_seconds: float | None) -> Cache[K, V]:
    """At most `maxsize` entries, least recently used out first; with `ttl_seconds`
    (`caches.expire_caches`), each entry also goes that long after it was cached. `name`
    is the cache's in the metrics."""
    if ttl_seconds is None:
        return metered_caches.lru_cache(name, maxsize)
    return metered_caches.ttl_cache(name, maxsize, ttl_seconds)


class EventLoader:
    def __init__(
        self,
        db: Database,
        *,
        events_cache_size: int,
        state_cache_size: int,
        cache_ttl_seconds: float | None = None,
    ) -> None:
        self._db = db
        ttl = cache_ttl_seconds
        self._event_id_to_event: Cache[str, Event] = bounded_cache("events", events_cache_size, ttl)
        self._group_to_state: Cache[int, StateMap] = bounded_cache(
            "state_groups", state_cache_size, ttl
        )
        # an event's state group never changes once it is persisted
        self._event_id_to_state_group: Cache[str, int] = bounded_cache(
            "event_state_groups", events_cache_size, ttl
        )
        # event ID -> (user, device, txn ID) it was sent with, or None if none: known for
        # the events this process persisted, so serving them needs no lookup
        self._event_id_to_txn: Cache[str, tuple[str, str, str] | None] = bounded_cache(
            "event_txns", events_cache_size, ttl
        )

    def remember(self, events: Iterable[Event]) -> None:
        for event in events:
            self._event_id_to_event[event.event_id] = event

    def forget(self, event_ids: Iterable[str]) -> None:
        """Drop deleted events (a history purge), so they are not served from memory."""
        for event_id in event_ids:
            self._event_id_to_event.pop(event_id, None)
            self._event_id_to_state_group.pop(event_id, None)
            self._event_id_to_txn.pop(event_id, None)

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        """The events found, by ID; unknown IDs are left out."""
        found, missing = _split_cached(self._event_id_to_event, event_ids)
        if missing:
            for event_id, stored in (await event_store.get_events(self._db, missing)).items():
                event = Event(stored.pdu, KNOWN_ROOM_VERSIONS[stored.room_version], event_id)
                event.rejected_reason = stored.rejected_reason
                self._event_id_to_event[event_id] = event
                found[event_id] = event
        return found

    async def get_event(self, event_id: str) -> Event | None:
        return (await self.get_events([event_id])).get(event_id)

    def remember_state_group(self, group: int, state: StateMap) -> None:
        self._group_to_state[group] = dict(state)

    def remember_txns(self, event_id_to_txn: Mapping[str, tuple[str, str, str] | None]) -> None:
        self._event_id_to_txn.update(event_id_to_txn)

    async def txn_ids_of(
        self, user_id: str, device_id: str, event_ids: Iterable[str]
    ) -> dict[str, str]:
        """event ID -> the transaction ID this user's device sent it with."""
        known, missing = _split_cached(self._event_id_to_txn, event_ids)
        if missing:
            read = await event_store.get_event_txns(self._db, missing)
            for event_id in missing:
                # "sent without one" is kept too: most events served are others'
                known[event_id] = self._event_id_to_txn[event_id] = read.get(event_id)
        return {
            event_id: txn[2]
            for event_id, txn in known.items()
            if txn is not None and txn[0] == user_id and txn[1] == device_id
        }

    def remember_state_groups(self, event_id_to_group: Mapping[str, int]) -> None:
        self._event_id_to_state_group.update(event_id_to_group)

    async def state_groups_of(self, event_ids: Iterable[str]) -> dict[str, int]:
        """event ID -> the state group after it, for the events that have one."""
        found, missing = _split_cached(self._event_id_to_state_group, event_ids)
        if missing:
            loaded = await state_store.get_event_state_groups(self._db, missing)
            self._event_id_to_state_group.update(loaded)
            found.update(loaded)
        return found

    async def load_state_groups(self, groups: Iterable[int]) -> None:
        """Bring many groups into the cache with one query, ahead of per-group reads."""
        missing = [group for group in dict.fromkeys(groups) if group not in self._group_to_state]
        if missing:
            for group, state in (
                await state_store.get_state_group_states(self._db, missing)
            ).items():
                self._group_to_state[group] = state

    async def get_state_group(self, group: int) -> StateMap:
        state = self._group_to_state.get(group)
        if state is None:
            state = await state_store.get_state_group_state(self._db, group)
            self._group_to_state[group] = state
        return dict(state)


def _split_cached(cache: Mapping[str, V], keys: Iterable[str]) -> tuple[dict[str, V], list[str]]:
    """(what the cache holds for the keys, the keys it does not hold), in key order."""
    found: dict[str, V] = {}
    missing: list[str] = []
    for key in dict.fromkeys(keys):
        if key in cache:
            found[key] = cache[key]
        else:
            missing.append(key)
    return found, missing
