"""The filter's `event_fields`: serve only the named fields of each event.

spec: definitions/sync_filter.yaml - dot-separated paths (`content.body`), a backslash
escapes a literal dot (`content.m\\.relates_to`); with no list every field is served.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def split_path(field: str) -> list[str]:
    return [part.replace("\\.", ".") for part in _UNESCAPED_DOT.split(field)]


def only_fields(event: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """A copy of `event` with only the given paths (those that exist)."""
    kept: dict[str, Any] = {}
    for field in fields:
        path = split_path(field)
        source: Any = event
        for part in path:
            if not isinstance(source, dict) or part not in source:
                break
            source = source[part]
        else:
            target = kept
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = source
    return kept
