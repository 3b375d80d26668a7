"""State resolution for room version 1.

spec: rooms/v1 "State resolution" - known to reset state; kept for rooms that still use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from ranvier.protocol.auth import AuthError, check_auth
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]
EventLookup = Callable[[str], Event | None]
CREATE_KEY: StateKey = ("m.room.create", "")

# spec: power levels first, then join rules, then members: "No other events affect the
# authorisation rules"
_AUTH_TYPES = ("m.room.power_levels", "m.room.join_rules", "m.room.member")


def _sha1(event_id: str) -> str:
    return hashlib.sha1(event_id.encode("utf-8")).hexdigest()


def _allowed(event: Event, resolved: Mapping[StateKey, str], lookup: EventLookup) -> bool:
    state: dict[StateKey, Event] = {}
    # Keys still conflicted are missing from R (e.g. the sender's membership while join rules
    # are resolved); for those the event's own auth events stand in, as in v2's iterative
    # auth checks, so that a linear history resolves to its latest state.
    for auth_id in event.auth_event_ids:
        auth_event = lookup(auth_id)
        if auth_event is not None and auth_event.state_key is not None:
            state[(auth_event.type, auth_event.state_key)] = auth_event
    wanted = auth_types_for_event(
        event.room_version, event.type, event.sender, event.state_key, event.content
    )
    for key in wanted | {CREATE_KEY}:
        event_id = resolved.get(key)
        state_event = lookup(event_id) if event_id is not None else None
        if state_event is not None:
            state[key] = state_event
    try:
        check_auth(event, state, event.room_version, signature_checker=lambda _e, _s: True)
    except AuthError:
        return False
    return True


def resolve_v1(
    room_version: RoomVersion, state_sets: Sequence[StateMap], lookup: EventLookup
) -> dict[StateKey, str]:
    resolved: dict[StateKey, str] = {}
    conflicts: dict[StateKey, set[str]] = {}
    keys = {key for state in state_sets for key in state}
    for key in keys:
        values = {state[key] for state in state_sets if key in state}
        # spec: a conflict is different event IDs for the same key; a key missing from some
        # states is not a conflict in this version
        if len(values) == 1:
            resolved[key] = next(iter(values))
        else:
            conflicts[key] = values

    def events_for(key: StateKey) -> list[Event]:
        return [e for e in (lookup(i) for i in conflicts[key]) if e is not None]

    for auth_type in _AUTH_TYPES:
        for key in sorted(k for k in conflicts if k[0] == auth_type):
            # spec: "Sort the list by ascending depth then descending sha1(event_id)"
            candidates = sorted(
                events_for(key), key=lambda e: (e.depth, _negated(_sha1(e.event_id)))
            )
            if not candidates:
                continue
            resolved[key] = candidates[0].event_id
            for event in candidates[1:]:
                if not _allowed(event, resolved, lookup):
                    break
                resolved[key] = event.event_id

    for key in sorted(k for k in conflicts if k[0] not in _AUTH_TYPES):
        # spec: "the event with the highest depth and lowest sha1(event_id) that passes"
        candidates = sorted(events_for(key), key=lambda e: (-e.depth, _sha1(e.event_id)))
        for event in candidates:
            if _allowed(event, resolved, lookup):
                resolved[key] = event.event_id
                break
    return resolved


def _negated(hex_digest: str) -> tuple[int, ...]:
    # descending order of a hex digest as an ascending sort key
    return tuple(-int(c, 16) for c in hex_digest)
