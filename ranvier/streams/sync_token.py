"""Sync tokens: one position per stream, opaque to clients.

Written `s<events>_<account_data>_<receipts>_<typing>_<presence>_<to_device>_<device_lists>
_<push_rules>`. The room-events position comes first and the token starts with `s`, so a
sync token is also a room-stream pagination token that /messages accepts (tokens.py).
Parsing tolerates missing trailing parts (they read as 0), so tokens from a server that
knew fewer streams stay valid after an upgrade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

EVENTS = "events"
ACCOUNT_DATA = "account_data"
RECEIPTS = "receipts"
TYPING = "typing"
PRESENCE = "presence"
TO_DEVICE = "to_device"
DEVICE_LISTS = "device_lists"
PUSH_RULES = "push_rules"

STREAMS = (EVENTS, ACCOUNT_DATA, RECEIPTS, TYPING, PRESENCE, TO_DEVICE, DEVICE_LISTS, PUSH_RULES)

# the events position, then up to one position for each of the 7 other streams
_TOKEN = re.compile(r"s(\d{1,19})((?:_\d{1,19}){0,7})")
_MAX_POSITION = 2**63 - 1


class InvalidSyncToken(ValueError):
    pass


@dataclass(frozen=True)
class SyncToken:
    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    to_device: int = 0
    device_lists: int = 0
    push_rules: int = 0

    def __str__(self) -> str:
        return "s" + "_".join(str(getattr(self, name)) for name in STREAMS)

    def get(self, stream: str) -> int:
        value: int = getattr(self, stream)
        return value

    def advanced(self, **positions: int) -> SyncToken:
        """This token with the given streams moved to the given positions."""
        return replace(self, **positions)

    def is_after(self, other: SyncToken) -> bool:
        """Whether any stream of this token is past `other`'s."""
        return any(self.get(s) > other.get(s) for s in STREAMS)

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        match = _TOKEN.fullmatch(text)
        if match is None:
            raise InvalidSyncToken(f"Invalid sync token {text!r}")
        parts = [int(match.group(1))]
        if match.group(2):
            parts += [int(p) for p in match.group(2)[1:].split("_")]
        if any(p > _MAX_POSITION for p in parts):
            raise InvalidSyncToken(f"Invalid sync token {text!r}")
        return cls(**dict(zip(STREAMS, parts, strict=False)))


assert tuple(f.name for f in fields(SyncToken)) == STREAMS and len(STREAMS) == 8
