"""Which state events a room's `required_state` asks for (MSC4186); pure.

A pair is (event type, state key). `*` as the type matches every type (with that state
key), `*` as the key every key of that type; the key `$ME` is the syncing user's ID, and
(`m.room.member`, `$LAZY`) the memberships of the senders of the timeline being sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from ranvier.services.sliding_sync.request import RoomParams, StatePair
from ranvier.storage.state import StateMap

WILDCARD = "*"
ME = "$ME"
LAZY = "$LAZY"
MEMBER = "m.room.member"


def combine(params: Iterable[RoomParams]) -> RoomParams:
    """A room in several lists or subscribed too: the union of what each asks for."""
    pairs: dict[StatePair, None] = {}
    limit = 0
    for one in params:
        pairs.update(dict.fromkeys(one.required_state))
        limit = max(limit, one.timeline_limit)
    return RoomParams(tuple(pairs), limit)


def select_state(
    pairs: Iterable[StatePair],
    state: StateMap,
    user_id: str,
    timeline_senders: Iterable[str] = (),
    *,
    lazy: bool = True,
) -> dict[tuple[str, str], str]:
    """The entries of `state` the pairs ask for; `lazy` False leaves `$LAZY` out."""
    types: set[str] = set()
    keys: set[str] = set()
    exact: set[tuple[str, str]] = set()
    everything = False
    for event_type, state_key in pairs:
        key = user_id if state_key == ME else state_key
        if event_type == WILDCARD and key == WILDCARD:
            everything = True
        elif event_type == WILDCARD:
            keys.add(key)
        elif key == WILDCARD:
            types.add(event_type)
        elif key == LAZY:
            if event_type == MEMBER and lazy:
                exact.update((MEMBER, sender) for sender in timeline_senders)
        else:
            exact.add((event_type, key))
    if everything:
        return dict(state)
    return {
        entry: event_id
        for entry, event_id in state.items()
        if entry in exact or entry[0] in types or entry[1] in keys
    }
