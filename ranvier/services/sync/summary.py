"""Room summaries for /sync: m.heroes, m.joined_member_count, m.invited_member_count.

spec: client-server-api "Calculating the display name for a room". Heroes are up to five
other members, joined or invited, in a stable order (by user ID, as Synapse sorts them)
so a client's computed room name does not flicker; when nobody else is joined or invited,
the members who left stand in. Counted in the database (storage/sync.py), so a large room
costs no more than a small one.
"""

from __future__ import annotations

from typing import Any

from ranvier.storage.sync import RoomMemberSummary

MAX_HEROES = 5


def room_summary(members: RoomMemberSummary) -> dict[str, Any]:
    return {
        "m.heroes": members.heroes[:MAX_HEROES],
        "m.joined_member_count": members.joined,
        "m.invited_member_count": members.invited,
    }
