"""Positions in a stream, handed out by the one process that writes the stream.

Positions are allocated before a write commits, and writes can commit out of order, so
readers must only be told about a position once every position below it has committed:
`current` is that position.
"""

from __future__ import annotations


class StreamPositions:
    def __init__(self, persisted_up_to: int) -> None:
        self._current = persisted_up_to
        self._next = persisted_up_to + 1
        self._in_flight: set[int] = set()

    @property
    def current(self) -> int:
        """Every position up to and including this one has committed (or was abandoned)."""
        return self._current

    @property
    def allocated(self) -> int:
        """The highest position handed out so far, committed or not."""
        return self._next - 1

    def allocate(self, count: int = 1) -> list[int]:
        positions = list(range(self._next, self._next + count))
        self._next += count
        self._in_flight.update(positions)
        return positions

    def finish(self, positions: list[int]) -> int:
        """Mark positions committed, or abandoned after a failed write; returns `current`."""
        self._in_flight.difference_update(positions)
        self._current = min(self._in_flight) - 1 if self._in_flight else self._next - 1
        return self._current
