"""Synapse-style size and duration strings ("50M", "30m") as used in homeserver.yaml."""

from __future__ import annotations

import re

_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_DURATION_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)B?\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w|y)?\s*$")


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string like "50M" (powers of 1024, as Synapse reads them)."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size; write a number of bytes or e.g. '50M'")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def parse_duration_ms(value: int | str) -> int:
    """Milliseconds from an int (already ms) or a string like "30m", "1h", "500ms"."""
    if isinstance(value, int):
        return value
    match = _DURATION_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration; write milliseconds or e.g. '30m'")
    # a bare number in a string is milliseconds, as for an int
    return int(match.group(1)) * _DURATION_MS[match.group(2) or "ms"]
