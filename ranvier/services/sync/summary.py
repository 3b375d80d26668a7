"""Room summaries for /sync: m.heroes, m.joined_member_count, m.invited_member_count.

spec: client-server-api "Calculating the display name for a room", and the RoomSummary of
GET /sync: heroes only for a room with no name and no canonical alias. Heroes are up to five
other members, joined or invited, in a stable order (by user ID, as Synapse sorts them)
so a client's computed room name does not flicker; when nobody else is joined or invited,
the members who left stand in. Counted in the database (storage/sync.py), so a large room
costs no more than a small one.
"""

from __future__ import annotations

from typing import Any

from ranvier.protocol.events import Event
from ranvier.storage.sync import RoomMemberSummary

MAX_HEROES = 5


# the state a client names a room from before it falls back to the heroes
NAMING_STATE = ("m.room.name", "m.room.canonical_alias")


def has_naming_content(event: Event) -> bool:
    """spec: a name or canonical alias that is set and not empty (as Synapse, the
    canonical alias's `alt_aliases` do not name the room)."""
    key = "name" if event.type == "m.room.name" else "alias"
    return bool(event.content.get(key))


def room_summary(members: RoomMemberSummary, *, with_heroes: bool = True) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "m.joined_member_count": members.joined,
        "m.invited_member_count": members.invited,
    }
    if with_heroes:
        summary["m.heroes"] = members.heroes[:MAX_HEROES]
    return summary
