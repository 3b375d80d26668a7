"""Pagination tokens for room events, opaque to clients.

Two shapes, as Synapse writes them:

- `t<depth>-<stream>`: a point in one room's timeline for /messages and /context. It sits
  just after the event at (topological_ordering=depth, stream_ordering=stream): events at
  or before that pair lie behind it, events after it ahead. Stream positions are unique, so
  "just before event (d, s)" is the point (d, s - 1). History pulled from other servers
  (backfilled) has stream positions below zero, so `stream` may be negative.
- `s<stream>`: a point in the room-events stream, as /sync hands out in `prev_batch`:
  every event with a stream position up to and including it lies behind it.

Both compare as (depth, stream) pairs once an `s` token is placed in a room (the room's
latest event at or before that stream position); `RoomPosition` is that pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOPOLOGICAL = re.compile(r"t(-?\d{1,19})-(-?\d{1,19})")
# later streams may append their positions after an underscore; the room stream is first
_STREAM = re.compile(r"s(\d{1,19})(?:_[0-9A-Za-z_.~-]*)?")


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True, order=True)
class RoomPosition:
    """A point in a room's timeline: just after the event at (depth, stream)."""

    depth: int
    stream: int

    def __str__(self) -> str:
        return f"t{self.depth}-{self.stream}"

    @classmethod
    def before(cls, depth: int, stream: int) -> RoomPosition:
        """The point just before the event at (depth, stream)."""
        return cls(depth, stream - 1)


@dataclass(frozen=True)
class StreamToken:
    """A point in the room-events stream: everything at or below `stream` is behind it."""

    stream: int

    def __str__(self) -> str:
        return f"s{self.stream}"


def parse_token(token: str) -> RoomPosition | StreamToken:
    """The position a token names; InvalidToken if it is not one we hand out."""
    if match := _TOPOLOGICAL.fullmatch(token):
        return RoomPosition(int(match.group(1)), int(match.group(2)))
    if match := _STREAM.fullmatch(token):
        return StreamToken(int(match.group(1)))
    raise InvalidToken(f"Invalid pagination token {token!r}")
