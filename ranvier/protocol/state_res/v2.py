"""State resolution v2 (room versions 2-11) and v2.1 (room version 12).

spec: rooms/fragments/v2-state-res.md; rooms/v12 "State resolution" (empty starting state and
the conflicted state subgraph).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence, Set

from ranvier.protocol.auth import AuthError, check_auth
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import Level, PowerLevels
from ranvier.protocol.room_versions import RoomVersion, StateResAlgorithm

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]
EventLookup = Callable[[str], Event | None]

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS = "m.room.power_levels"


def split_conflicts(
    state_sets: Sequence[StateMap],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The unconflicted state map and, per key, the conflicting event IDs.

    spec: "If a given key K is present in every S_i with the same value V ... (K, V) belongs to
    the unconflicted state map. Otherwise, V belongs to the conflicted state set."
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    keys: set[StateKey] = set()
    for state in state_sets:
        keys.update(state)
    for key in keys:
        values = {state.get(key) for state in state_sets}
        if len(values) == 1 and None not in values:
            unconflicted[key] = next(iter(values))  # type: ignore[assignment]
        else:
            conflicted[key] = {v for v in values if v is not None}
    return unconflicted, conflicted


def auth_chain(event_ids: Iterable[str], lookup: EventLookup) -> set[str]:
    """Every event reachable through `auth_events` from `event_ids` (not including them)."""
    chain: set[str] = set()
    stack = list(event_ids)
    while stack:
        event = lookup(stack.pop())
        if event is None:
            continue
        for auth_id in event.auth_event_ids:
            if auth_id not in chain:
                chain.add(auth_id)
                stack.append(auth_id)
    return chain


def is_power_event(event: Event) -> bool:
    """spec: v2-state-res "Power events"."""
    if event.state_key is None:
        return False
    if event.type in (POWER_LEVELS, "m.room.join_rules"):
        return True
    return (
        event.type == "m.room.member"
        and event.membership in ("leave", "ban")
        and event.sender != event.state_key
    )


def conflicted_subgraph(conflicted_ids: Set[str], lookup: EventLookup) -> set[str]:
    """spec: rooms/v12 "Conflicted state subgraph" - events on auth paths between conflicted events.

    An event is on such a path when it is reachable from a conflicted event and a conflicted
    event is reachable from it (endpoints included).
    """
    reachable: set[str] = set()
    children: dict[str, set[str]] = {}
    stack = list(conflicted_ids)
    while stack:
        event_id = stack.pop()
        event = lookup(event_id)
        if event is None:
            continue
        for auth_id in event.auth_event_ids:
            children.setdefault(auth_id, set()).add(event_id)
            if auth_id not in reachable:
                reachable.add(auth_id)
                stack.append(auth_id)
    # walk back down from every conflicted event, staying among the events seen above
    on_path = set(conflicted_ids)
    stack = [e for e in conflicted_ids if e in reachable]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in on_path:
                on_path.add(child)
                stack.append(child)
    return on_path & (reachable | set(conflicted_ids))


class _Resolver:
    def __init__(self, room_version: RoomVersion, lookup: EventLookup) -> None:
        self.rv = room_version
        self._lookup = lookup
        self._power_cache: dict[str, Level] = {}
        self._chain_cache: dict[str, frozenset[str]] = {}

    def event(self, event_id: str) -> Event:
        event = self._lookup(event_id)
        if event is None:
            raise KeyError(f"state resolution needs event {event_id}, which is unknown")
        return event

    def maybe_event(self, event_id: str) -> Event | None:
        return self._lookup(event_id)

    def create_event_for(self, event: Event) -> Event | None:
        """The room's create event as seen from `event`: cited, or (v12) named by the room ID."""
        for auth_id in event.auth_event_ids:
            auth_event = self.maybe_event(auth_id)
            if auth_event is not None and auth_event.type == "m.room.create":
                return auth_event
        if self.rv.room_id_from_create_event and event.room_id.startswith("!"):
            return self.maybe_event("$" + event.room_id[1:])
        return None

    def full_chain(self, event_id: str) -> frozenset[str]:
        cached = self._chain_cache.get(event_id)
        if cached is None:
            cached = frozenset(auth_chain([event_id], self._lookup))
            self._chain_cache[event_id] = cached
        return cached

    def sender_power(self, event: Event) -> Level:
        """spec: "x's sender has greater power level ... when looking at their auth_events"."""
        cached = self._power_cache.get(event.event_id)
        if cached is not None:
            return cached
        power_event = None
        for auth_id in event.auth_event_ids:
            auth_event = self.maybe_event(auth_id)
            if auth_event is not None and auth_event.type == POWER_LEVELS:
                power_event = auth_event
        create = self.create_event_for(event)
        if event.type == "m.room.create":
            create = event
        level = PowerLevels.from_events(self.rv, create, power_event).user_level(event.sender)
        self._power_cache[event.event_id] = level
        return level

    def reverse_topological_power_sort(self, event_ids: Set[str]) -> list[str]:
        """spec: "Reverse topological power ordering", Kahn's algorithm on auth edges in the set."""
        waiting_on: dict[str, int] = {}
        dependents: dict[str, list[str]] = {e: [] for e in event_ids}
        for event_id in event_ids:
            parents = {a for a in self.event(event_id).auth_event_ids if a in event_ids}
            waiting_on[event_id] = len(parents)
            for parent in parents:
                dependents[parent].append(event_id)

        def sort_key(event_id: str) -> tuple[Level, int, str]:
            event = self.event(event_id)
            return (-self.sender_power(event), event.origin_server_ts, event_id)

        heap = [(sort_key(e), e) for e, count in waiting_on.items() if count == 0]
        heapq.heapify(heap)
        ordered: list[str] = []
        while heap:
            _, event_id = heapq.heappop(heap)
            ordered.append(event_id)
            for child in dependents[event_id]:
                waiting_on[child] -= 1
                if waiting_on[child] == 0:
                    heapq.heappush(heap, (sort_key(child), child))
        return ordered

    def power_event_in_auth(self, event: Event) -> Event | None:
        for auth_id in event.auth_event_ids:
            auth_event = self.maybe_event(auth_id)
            if auth_event is not None and auth_event.type == POWER_LEVELS:
                return auth_event
        return None

    def mainline_sort(self, event_ids: Iterable[str], power_event_id: str | None) -> list[str]:
        """spec: "Mainline ordering" based on the resolved power levels event."""
        mainline_index: dict[str, int] = {}
        current = self.maybe_event(power_event_id) if power_event_id else None
        index = 0
        while current is not None and current.event_id not in mainline_index:
            mainline_index[current.event_id] = index
            index += 1
            current = self.power_event_in_auth(current)

        position_cache: dict[str, float] = {}

        def position(event: Event) -> float:
            # e_1, e_2, ...: the power levels chain of the event, excluding the event itself
            walked: list[str] = []
            current = self.power_event_in_auth(event)
            found = math.inf
            while current is not None:
                if current.event_id in position_cache:
                    found = position_cache[current.event_id]
                    break
                if current.event_id in mainline_index:
                    found = mainline_index[current.event_id]
                    break
                walked.append(current.event_id)
                current = self.power_event_in_auth(current)
            for walked_id in walked:
                position_cache[walked_id] = found
            return found

        def sort_key(event_id: str) -> tuple[float, int, str]:
            event = self.event(event_id)
            # greater mainline position sorts first: it is based on an earlier power event
            return (-position(event), event.origin_server_ts, event_id)

        return sorted(event_ids, key=sort_key)

    def iterative_auth_checks(
        self, event_ids: Sequence[str], base: Mapping[StateKey, str]
    ) -> dict[StateKey, str]:
        """spec: "Iterative auth checks" - apply each event that passes auth in the state so far."""
        state = dict(base)
        for event_id in event_ids:
            event = self.event(event_id)
            if event.state_key is None:
                continue
            auth_map: dict[StateKey, Event] = {}
            for auth_id in event.auth_event_ids:
                auth_event = self.maybe_event(auth_id)
                # spec: rejected auth events are never used for the checks
                if auth_event is None or auth_event.rejected_reason is not None:
                    continue
                if auth_event.state_key is not None:
                    auth_map[(auth_event.type, auth_event.state_key)] = auth_event
            wanted = auth_types_for_event(
                self.rv, event.type, event.sender, event.state_key, event.content
            )
            wanted.add(CREATE_KEY)
            for key in wanted:
                state_id = state.get(key)
                if state_id is not None:
                    state_event = self.maybe_event(state_id)
                    if state_event is not None:
                        auth_map[key] = state_event
            if CREATE_KEY not in auth_map:
                create = self.create_event_for(event)
                if create is not None:
                    auth_map[CREATE_KEY] = create
            try:
                check_auth(event, auth_map, self.rv, signature_checker=_trust_signatures)
            except AuthError:
                continue
            state[(event.type, event.state_key)] = event_id
        return state


def _trust_signatures(event: Event, server_name: str) -> bool:
    # Signatures were verified on receipt; state resolution only re-runs the auth rules.
    return True


def resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    lookup: EventLookup,
    auth_chains: Sequence[Set[str]] | None = None,
) -> dict[StateKey, str]:
    """Resolve state sets with state resolution v2 (or v2.1 for room version 12).

    `lookup` returns any event of the state sets or their auth chains. `auth_chains[i]` is the
    full auth chain of `state_sets[i]`; it is computed through `lookup` when not given.
    """
    if not state_sets:
        return {}
    unconflicted, conflicts = split_conflicts(state_sets)
    if not conflicts:
        return unconflicted
    resolver = _Resolver(room_version, lookup)
    if auth_chains is None:
        auth_chains = [auth_chain(state.values(), lookup) for state in state_sets]
    union: set[str] = set().union(*auth_chains)
    common: set[str] = set(auth_chains[0]).intersection(*auth_chains[1:])
    auth_difference = union - common
    conflicted_ids: set[str] = set().union(*conflicts.values())
    full_conflicted = conflicted_ids | auth_difference
    is_v2_1 = room_version.state_res is StateResAlgorithm.V2_1
    if is_v2_1:
        full_conflicted |= conflicted_subgraph(conflicted_ids, lookup)
    # events never seen (e.g. chains the caller could not load) cannot take part
    full_conflicted = {e for e in full_conflicted if lookup(e) is not None}

    # step 1: power events and the parts of their auth chains inside the full conflicted set
    power_ids = {e for e in full_conflicted if is_power_event(resolver.event(e))}
    chosen = set(power_ids)
    for power_id in power_ids:
        chosen |= resolver.full_chain(power_id) & full_conflicted
    sorted_power = resolver.reverse_topological_power_sort(chosen)

    # step 2: v2 starts from the unconflicted state, v2.1 from nothing
    start: Mapping[StateKey, str] = {} if is_v2_1 else unconflicted
    partial = resolver.iterative_auth_checks(sorted_power, start)

    # step 3 and 4: the rest by mainline order of the resolved power levels
    others = full_conflicted - chosen
    ordered = resolver.mainline_sort(others, partial.get((POWER_LEVELS, "")))
    resolved = resolver.iterative_auth_checks(ordered, partial)

    # step 5: the unconflicted state map always wins
    resolved.update(unconflicted)
    return resolved
