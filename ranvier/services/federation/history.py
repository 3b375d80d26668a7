"""A room's history and state for other servers: spec server-server-api "Retrieving
events", "Backfilling and retrieving missing events" and "Retrieving event authorisation
information" (events.yaml, backfill.yaml, event_auth.yaml).

Every answer is for one asking server: the room's server ACL first, then whether it may
read the room at all, then each event through server_visibility (redacted where hidden).
PDUs are served as stored, the full signed events. Rejected events are never part of an
answer but /event's (as Synapse serves them to a server that asks by ID); outliers have no
place in the timeline, so backfill does not walk through them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.federation.server_visibility import ServerVisibility
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.events import StoredEvent
from ranvier.storage.state import StateMap

# as Synapse: it asks for 100 per backfill request and serves no more; at most 20 missing
# events per request
MAX_BACKFILL = 100
MAX_MISSING_EVENTS = 20
DEFAULT_MISSING_EVENTS = 10


def not_found(message: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", message)


def _event(stored: StoredEvent) -> Event:
    event = Event(stored.pdu, KNOWN_ROOM_VERSIONS[stored.room_version], stored.event_id)
    event.rejected_reason = stored.rejected_reason
    return event


class FederationHistory:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        acl: ServerAclChecker,
        visibility: ServerVisibility,
        server_name: str,
    ) -> None:
        self._db = db
        self._loader = loader
        self._acl = acl
        self._visibility = visibility
        self._server_name = server_name

    def _transaction(self, pdus: list[dict[str, Any]]) -> dict[str, Any]:
        """spec: definitions/single_pdu_transaction, unlimited_pdu_transaction."""
        return {"origin": self._server_name, "origin_server_ts": now_ms(), "pdus": pdus}

    async def check_acl(self, origin: str, room_id: str) -> None:
        """403 M_FORBIDDEN when the room's server ACL denies `origin`; for endpoints that
        check it before reading a body, so a denied server hears only that."""
        await self._acl.check(origin, room_id)

    async def _admit(self, origin: str, room_id: str) -> bool:
        """The ACL, then whether `origin` may read the room; whether it is in it now."""
        await self._acl.check(origin, room_id)
        return await self._visibility.check_may_read_room(origin, room_id)

    async def _event_in_room(self, room_id: str, event_id: str) -> StoredEvent:
        stored = (await event_store.get_events(self._db, [event_id])).get(event_id)
        if stored is None or stored.room_id != room_id or stored.rejected_reason is not None:
            raise not_found(f"Could not find event {event_id}")
        return stored

    # -- single events ---------------------------------------------------------------------

    async def get_event(self, origin: str, event_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/event/{eventId}"""
        stored = (await event_store.get_events(self._db, [event_id])).get(event_id)
        if stored is None:
            raise not_found(f"Could not find event {event_id}")
        in_room = await self._admit(origin, stored.room_id)
        pdus = await self._visibility.pdus_for_server(origin, [_event(stored)], in_room_now=in_room)
        return self._transaction(pdus)

    # -- state -------------------------------------------------------------------------------

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/state_ids/{roomId}"""
        await self._admit(origin, room_id)
        state = await self._state_before(await self._event_in_room(room_id, event_id))
        chain = await event_store.get_auth_chain_ids(self._db, state.values())
        return {"pdu_ids": sorted(state.values()), "auth_chain_ids": sorted(chain)}

    async def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/state/{roomId}"""
        await self._admit(origin, room_id)
        state = await self._state_before(await self._event_in_room(room_id, event_id))
        chain = await event_store.get_auth_chain_ids(self._db, state.values())
        return {
            "pdus": await self._pdus(sorted(state.values())),
            "auth_chain": await self._pdus(sorted(chain)),
        }

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}"""
        await self._admit(origin, room_id)
        event = _event(await self._event_in_room(room_id, event_id))
        chain = await event_store.get_auth_chain_ids(self._db, event.auth_event_ids)
        return {"auth_chain": await self._pdus(sorted({*chain, *event.auth_event_ids}))}

    async def _pdus(self, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """State and auth events, whole but for redactions: every server reading the room
        may see its state (redaction keeps what the auth rules read)."""
        loaded = await self._loader.get_events(event_ids)
        return await self._visibility.pdus_with_redactions(
            [loaded[event_id] for event_id in event_ids if event_id in loaded]
        )

    async def _state_before(self, stored: StoredEvent) -> StateMap:
        """spec: events.yaml - the state "prior to considering any state changes induced by
        the requested event"."""
        if stored.outlier:
            raise not_found(f"State not known at event {stored.event_id}")
        event = _event(stored)
        group = (await self._loader.state_groups_of([event.event_id])).get(event.event_id)
        if group is None:
            raise not_found(f"State not known at event {event.event_id}")
        state = await self._loader.get_state_group(group)
        if not event.is_state():
            return state
        key = (event.type, event.state_key or "")
        if state.get(key) != event.event_id:
            return state
        before = await self._value_before(event, group, key)
        if before is None:
            state.pop(key)
        else:
            state[key] = before
        return state

    async def _value_before(self, event: Event, group: int, key: tuple[str, str]) -> str | None:
        """What `key` held just before the state event `event` replaced it."""
        # an auth event under the same key was chosen from the state before: exact
        auth = await self._loader.get_events(event.auth_event_ids)
        for auth_event in auth.values():
            if (auth_event.type, auth_event.state_key) == key:
                return auth_event.event_id
        # one prev event, or several that agree
        prev_groups = await self._loader.state_groups_of(event.prev_event_ids)
        values = {
            (await self._loader.get_state_group(prev_group)).get(key)
            for prev_group in prev_groups.values()
        }
        if len(values) == 1:
            return values.pop()
        # branches that disagree: the base of the delta made for this event
        origin = await state_store.get_state_group_origin(self._db, group)
        if origin is not None and origin[0] == event.event_id and origin[1] is not None:
            return (await self._loader.get_state_group(origin[1])).get(key)
        return None

    # -- walking the DAG ---------------------------------------------------------------------

    async def backfill(
        self, origin: str, room_id: str, event_ids: Sequence[str], limit: int
    ) -> dict[str, Any]:
        """GET /_matrix/federation/v1/backfill/{roomId}: the given events and those before
        them, newest first, walking prev_events by depth (then stream position) so the
        newest history comes first and the window stays contiguous."""
        in_room = await self._admit(origin, room_id)
        limit = min(limit, MAX_BACKFILL)
        seeds = await event_store.get_events(self._db, event_ids)
        queue: list[tuple[int, int, str]] = [
            (-int(seed.pdu.get("depth", 0)), -seed.stream_ordering, seed.event_id)
            for seed in seeds.values()
            if seed.room_id == room_id and not seed.outlier
        ]
        heapq.heapify(queue)
        found: dict[str, tuple[int, int]] = {}
        while queue and len(found) < limit:
            depth, stream, event_id = heapq.heappop(queue)
            if event_id in found:
                continue
            found[event_id] = (depth, stream)
            for step in await event_store.get_prev_steps(self._db, room_id, [event_id]):
                if not step.outlier and step.prev_event_id not in found:
                    heapq.heappush(queue, (-step.depth, -step.stream, step.prev_event_id))
        ordered = sorted(found, key=lambda event_id: (*found[event_id], event_id))
        events = await self._timeline_events(ordered)
        pdus = await self._visibility.pdus_for_server(origin, events, in_room_now=in_room)
        return self._transaction(pdus)

    async def get_missing_events(
        self,
        origin: str,
        room_id: str,
        earliest_events: Sequence[str],
        latest_events: Sequence[str],
        limit: int,
        min_depth: int,
    ) -> dict[str, Any]:
        """POST /_matrix/federation/v1/get_missing_events/{roomId}: breadth-first back from
        `latest_events` along prev_events, neither returning nor walking past
        `earliest_events` nor events below `min_depth`; oldest first."""
        in_room = await self._admit(origin, room_id)
        limit = min(limit, MAX_MISSING_EVENTS)
        earliest = set(earliest_events)
        seen = earliest | set(latest_events)
        front = [event_id for event_id in dict.fromkeys(latest_events) if event_id not in earliest]
        found: dict[str, tuple[int, int]] = {}
        while front and len(found) < limit:
            next_front: list[str] = []
            for step in await event_store.get_prev_steps(self._db, room_id, front):
                if step.prev_event_id in seen or step.depth < min_depth:
                    continue
                seen.add(step.prev_event_id)
                if len(found) < limit:
                    found[step.prev_event_id] = (step.depth, step.stream)
                    next_front.append(step.prev_event_id)
            front = next_front
        ordered = sorted(found, key=lambda event_id: (*found[event_id], event_id))
        events = await self._timeline_events(ordered)
        return {
            "events": await self._visibility.pdus_for_server(origin, events, in_room_now=in_room)
        }

    async def _timeline_events(self, event_ids: Sequence[str]) -> list[Event]:
        """The events, in the order given, less rejected ones."""
        loaded = await self._loader.get_events(event_ids)
        return [
            event
            for event_id in event_ids
            if (event := loaded.get(event_id)) is not None and event.rejected_reason is None
        ]

    # -- timestamps --------------------------------------------------------------------------

    async def timestamp_to_event(
        self, origin: str, room_id: str, ts: int, *, forwards: bool
    ) -> dict[str, Any]:
        """GET /_matrix/federation/v1/timestamp_to_event/{roomId}, from this server's own
        events only."""
        await self._admit(origin, room_id)
        found = await event_store.event_closest_to_ts(self._db, room_id, ts, forwards=forwards)
        if found is None:
            direction = "forward" if forwards else "backward"
            raise not_found(f"Unable to find event from {ts} in {direction} direction")
        return {"event_id": found[0], "origin_server_ts": found[1]}
