"""State resolution: the state of a room where its DAG forks.

The algorithms are synchronous and pure over an event lookup (`resolve_state_sync`);
`resolve_state` is a thin async wrapper that loads what they need through fetchers.
The result is independent of the order of the state sets.

spec: rooms/v1 "State resolution"; rooms/fragments/v2-state-res.md; rooms/v12.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence, Set

from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion, StateResAlgorithm
from ranvier.protocol.state_res.v1 import resolve_v1
from ranvier.protocol.state_res.v2 import (
    auth_chain,
    conflicted_subgraph,
    is_power_event,
    resolve_v2,
    split_conflicts,
)

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]
# Loads events by ID; IDs it does not know are left out of the result.
EventFetcher = Callable[[Collection[str]], Awaitable[Mapping[str, Event]]]
# The full auth chain (union, excluding the given events unless cited) of some events.
AuthChainFetcher = Callable[[Collection[str]], Awaitable[Set[str]]]

__all__ = [
    "AuthChainFetcher",
    "EventFetcher",
    "auth_chain",
    "conflicted_subgraph",
    "is_power_event",
    "resolve_state",
    "resolve_state_sync",
    "split_conflicts",
]


def resolve_state_sync(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    events: Mapping[str, Event] | Callable[[str], Event | None],
    auth_chains: Sequence[Set[str]] | None = None,
) -> dict[StateKey, str]:
    """Resolve `state_sets` with the algorithm of `room_version`.

    `events` must hold (or look up) every event of the state sets and of their auth chains.
    `auth_chains[i]`, if given, is the full auth chain of `state_sets[i]` (v2 and v2.1 only);
    otherwise it is computed by walking `auth_events` through `events`.
    """
    lookup = events.get if isinstance(events, Mapping) else events
    if room_version.state_res is StateResAlgorithm.V1:
        return resolve_v1(room_version, state_sets, lookup)
    return resolve_v2(room_version, state_sets, lookup, auth_chains)


async def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    event_fetcher: EventFetcher,
    auth_chain_fetcher: AuthChainFetcher,
) -> dict[StateKey, str]:
    """Load the events state resolution needs, then resolve with `resolve_state_sync`."""
    unconflicted, conflicts = split_conflicts(state_sets)
    if not conflicts:
        return unconflicted
    state_ids: set[str] = {event_id for state in state_sets for event_id in state.values()}
    events: dict[str, Event] = dict(await event_fetcher(state_ids))
    auth_chains: list[Set[str]] | None = None
    if room_version.state_res is StateResAlgorithm.V1:
        # v1 only authorises conflicted events against the state being built
        return resolve_state_sync(room_version, state_sets, events)
    auth_chains = [await auth_chain_fetcher(list(state.values())) for state in state_sets]
    # every event in the chains may be needed: power lookups, mainlines, subgraph paths
    missing = set().union(*auth_chains) - events.keys()
    if missing:
        events.update(await event_fetcher(missing))
    return resolve_state_sync(room_version, state_sets, events, auth_chains)
