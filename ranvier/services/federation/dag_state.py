"""The room's state where an event attaches to the DAG: after its prev events, resolved
when there are several (protocol/state_res). For events this server accepts or builds
outside the room's send queue (send_join, invites countersigned by another server)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ranvier.protocol.events import Event
from ranvier.protocol.state_res import resolve_state
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage import events as event_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateKey


async def state_at_prev_events(
    db: Database, loader: EventLoader, event: Event
) -> dict[StateKey, str] | None:
    """The state before `event`; None if one of its prev events has no state here
    (unknown, or known only as an outlier)."""
    prev_ids = list(dict.fromkeys(event.prev_event_ids))
    groups = await loader.state_groups_of(prev_ids)
    if not prev_ids or any(prev_id not in groups for prev_id in prev_ids):
        return None
    states = [dict(await loader.get_state_group(groups[p])) for p in prev_ids]
    if len(states) == 1:
        return states[0]

    async def fetch(ids: Collection[str]) -> Mapping[str, Event]:
        return await loader.get_events(ids)

    async def auth_chain(ids: Collection[str]) -> set[str]:
        return await event_store.get_auth_chain_ids(db, ids)

    return dict(await resolve_state(event.room_version, states, fetch, auth_chain))
