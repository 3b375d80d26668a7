"""Which keys (rooms, users) changed after a stream position, answered from memory.

An incremental /sync would otherwise ask the database about every room of a user to find
the one or two that moved, and about the user's account data when nothing changed. A
writer records each key's newest position once the change is committed; a question about
a position at or above `floor` (what the process knows nothing before: its start, or what
was forgotten to bound memory) is answered exactly, and one below it gets None: "ask the
database".
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_MAX_KEYS = 100_000


class ChangeLog:
    def __init__(self, floor: int, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.floor = floor
        self._max_keys = max_keys
        # insertion order is recency: a key moves to the end when it changes
        self._key_to_last: dict[str, int] = {}

    def record(self, key: str, position: int) -> None:
        last = self._key_to_last.pop(key, 0)
        self._key_to_last[key] = max(last, position)
        if len(self._key_to_last) > self._max_keys:
            self._forget_oldest(len(self._key_to_last) - self._max_keys // 2)

    def changed_since(self, keys: Iterable[str], position: int) -> set[str] | None:
        """The keys among `keys` that changed after `position`; None if unknown."""
        if position < self.floor:
            return None
        last = self._key_to_last
        return {key for key in keys if last.get(key, 0) > position}

    def _forget_oldest(self, count: int) -> None:
        oldest = list(self._key_to_last)[:count]
        for key in oldest:
            self.floor = max(self.floor, self._key_to_last.pop(key))
