"""Which of a room's events another server may read, and in which form.

The spec defines history visibility for users (client-server-api "Room History
Visibility"); a server sees what its users could see. As in Synapse, a server may ask about
a room at all only while one of its users is joined to it, and here also when the room is
world_readable now (anyone may read such a room, so any server may). Each event is then
judged by the state after it:

- world_readable: visible;
- shared: visible to a server in the room now (its users, joined later, may read
  shared history), else as for `joined`;
- invited: visible if one of the server's users was invited or joined then;
- joined: visible if one of the server's users was joined then.

An event that is not visible, whose sender was erased, or that a redaction applies to is
served redacted (the spec's pruned form, still signed and hash-checkable), never dropped,
so the DAG stays walkable. Outliers have no state here: like Synapse, they count as shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.redaction import redact
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.visibility import HISTORY_VISIBILITY, visibility_of
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.erasure import erased_among
from ranvier.storage.state import StateMap


def server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def visible_to_server(visibility: str, memberships: Iterable[str], *, in_room_now: bool) -> bool:
    """Whether a server sees an event unredacted, from the history visibility at the event
    and the memberships its users had then. Pure."""
    if visibility == "world_readable":
        return True
    if visibility == "shared" and in_room_now:
        return True
    held = set(memberships)
    if "join" in held:
        return True
    return visibility == "invited" and "invite" in held


def host_not_in_room() -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", "Host not in room.")


class ServerVisibility:
    def __init__(self, db: Database, loader: EventLoader, redactions: Redactions) -> None:
        self._db = db
        self._loader = loader
        self._redactions = redactions

    async def in_room(self, server_name: str, room_id: str) -> bool:
        """Whether one of the server's users is joined to the room now."""
        return await state_store.server_has_joined_member(self._db, room_id, server_name)

    async def check_may_read_room(self, server_name: str, room_id: str) -> bool:
        """403 M_FORBIDDEN unless the server is in the room or the room is world_readable
        now; returns whether it is in the room."""
        if await self.in_room(server_name, room_id):
            return True
        current = await state_store.get_current_state_ids(self._db, room_id)
        visibility_id = current.get(HISTORY_VISIBILITY)
        event = await self._loader.get_event(visibility_id) if visibility_id else None
        if event is None or visibility_of(event.content) != "world_readable":
            raise host_not_in_room()
        return False

    async def pdus_for_server(
        self, server_name: str, events: Sequence[Event], *, in_room_now: bool
    ) -> list[dict[str, Any]]:
        """The events as PDUs for `server_name`, in the order given, redacted where it may
        not see them."""
        if not events:
            return []
        hidden = await self._hidden_from(server_name, events, in_room_now=in_room_now)
        erased = await erased_among(self._db, {event.sender for event in events})
        redacted = await self._redactions.applied(events)
        return [
            redact(event.pdu, event.room_version)
            if event.event_id in hidden or event.sender in erased or event.event_id in redacted
            else event.pdu
            for event in events
        ]

    async def pdus_with_redactions(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The events as PDUs, redacted where a redaction applies and otherwise whole: the
        room's state and auth chains, which a server needs to follow the auth rules."""
        redacted = await self._redactions.applied(events)
        return [
            redact(event.pdu, event.room_version) if event.event_id in redacted else event.pdu
            for event in events
        ]

    async def _hidden_from(
        self, server_name: str, events: Sequence[Event], *, in_room_now: bool
    ) -> set[str]:
        groups = await self._loader.state_groups_of(event.event_id for event in events)
        await self._loader.load_state_groups(groups.values())
        group_to_view: dict[int, tuple[str, list[str]]] = {}
        hidden: set[str] = set()
        for event in events:
            group = groups.get(event.event_id)
            if group is None:
                continue  # an outlier: no state known, so as shared
            if group not in group_to_view:
                state = await self._loader.get_state_group(group)
                group_to_view[group] = await self._view(state, server_name)
            visibility, memberships = group_to_view[group]
            if not visible_to_server(visibility, memberships, in_room_now=in_room_now):
                hidden.add(event.event_id)
        return hidden

    async def _view(self, state: StateMap, server_name: str) -> tuple[str, list[str]]:
        """(history visibility, the memberships of the server's users) in one state."""
        visibility_id = state.get(HISTORY_VISIBILITY)
        member_ids = [
            event_id
            for (event_type, state_key), event_id in state.items()
            if event_type == "m.room.member" and server_of(state_key) == server_name
        ]
        loaded = await self._loader.get_events(
            [*member_ids, *([visibility_id] if visibility_id else [])]
        )
        visibility_event = loaded.get(visibility_id) if visibility_id else None
        visibility = visibility_of(visibility_event.content if visibility_event else None)
        memberships = [
            membership
            for event_id in member_ids
            if (member := loaded.get(event_id)) is not None
            and (membership := member.membership) is not None
        ]
        return visibility, memberships
