"""Which rooms had new events after a stream position, answered from memory.

An incremental /sync of a user in many rooms would otherwise ask the database about every
room to find the one or two that moved. The room sender records each room's newest
position as its batch commits; a question about a position at or above `floor` (what the
process knows nothing before: its start, or what was forgotten to bound memory) is
answered exactly, and one below it gets None: "ask the database".
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_MAX_ROOMS = 100_000


class RoomChanges:
    def __init__(self, floor: int, max_rooms: int = DEFAULT_MAX_ROOMS) -> None:
        self.floor = floor
        self._max_rooms = max_rooms
        # insertion order is recency: a room moves to the end when it changes
        self._room_id_to_last: dict[str, int] = {}

    def record(self, room_id: str, position: int) -> None:
        last = self._room_id_to_last.pop(room_id, 0)
        self._room_id_to_last[room_id] = max(last, position)
        if len(self._room_id_to_last) > self._max_rooms:
            self._forget_oldest(len(self._room_id_to_last) - self._max_rooms // 2)

    def changed_since(self, room_ids: Iterable[str], position: int) -> set[str] | None:
        """The rooms among `room_ids` with an event after `position`; None if unknown."""
        if position < self.floor:
            return None
        last = self._room_id_to_last
        return {room_id for room_id in room_ids if last.get(room_id, 0) > position}

    def _forget_oldest(self, count: int) -> None:
        oldest = list(self._room_id_to_last)[:count]
        for room_id in oldest:
            self.floor = max(self.floor, self._room_id_to_last.pop(room_id))
