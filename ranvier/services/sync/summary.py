"""Room summaries for /sync: m.heroes, m.joined_member_count, m.invited_member_count.

spec: client-server-api "Calculating the display name for a room". Heroes are up to five
other members, joined or invited, in a stable order (by user ID, as Synapse sorts them)
so a client's computed room name does not flicker; when nobody else is joined or invited,
the members who left stand in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_HEROES = 5


def room_summary(user_id: str, members: Mapping[str, str]) -> dict[str, Any]:
    """`members`: user_id -> membership for the room's current members of any kind."""
    joined = sum(1 for m in members.values() if m == "join")
    invited = sum(1 for m in members.values() if m == "invite")
    present = sorted(u for u, m in members.items() if u != user_id and m in ("join", "invite"))
    if not present:
        present = sorted(u for u, m in members.items() if u != user_id and m in ("leave", "ban"))
    return {
        "m.heroes": present[:MAX_HEROES],
        "m.joined_member_count": joined,
        "m.invited_member_count": invited,
    }
