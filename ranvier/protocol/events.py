"""The PDU as received: the exact dict is kept for hashing, with typed access to common fields.

The interface here (the properties of `Event`) is what auth rules and state resolution use;
they never look at the raw dict themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.protocol.room_versions import RoomVersion


class Event:
    """An immutable view over one PDU of a given room version."""

    __slots__ = ("_event_id", "_pdu", "rejected_reason", "room_version")

    def __init__(self, pdu: Mapping[str, Any], room_version: RoomVersion, event_id: str) -> None:
        self._pdu: dict[str, Any] = dict(pdu)
        self.room_version = room_version
        self._event_id = event_id
        # set by whoever authorised the event; rejected events never count as state
        self.rejected_reason: str | None = None

    @property
    def pdu(self) -> dict[str, Any]:
        """The exact received dict; callers must not mutate it."""
        return self._pdu

    @property
    def event_id(self) -> str:
        return self._event_id

    @property
    def room_id(self) -> str:
        room_id: str = self._pdu.get("room_id", "")
        # spec: rooms/v12 - the create event has no room_id; it is its own ID with `!`
        if (
            not room_id
            and self.room_version.room_id_from_create_event
            and self.type == "m.room.create"
            and self._pdu.get("state_key") == ""
        ):
            return "!" + self._event_id[1:]
        return room_id

    @property
    def type(self) -> str:
        return str(self._pdu.get("type", ""))

    @property
    def state_key(self) -> str | None:
        key = self._pdu.get("state_key")
        return key if isinstance(key, str) else None

    def is_state(self) -> bool:
        return "state_key" in self._pdu

    @property
    def sender(self) -> str:
        return str(self._pdu.get("sender", ""))

    @property
    def content(self) -> dict[str, Any]:
        content = self._pdu.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def membership(self) -> str | None:
        value = self.content.get("membership")
        return value if isinstance(value, str) else None

    @property
    def depth(self) -> int:
        return int(self._pdu.get("depth", 0))

    @property
    def origin_server_ts(self) -> int:
        return int(self._pdu.get("origin_server_ts", 0))

    @property
    def redacts(self) -> str | None:
        # v11 moved `redacts` into content; older versions keep it top-level
        value = self._pdu.get("redacts")
        if value is None:
            value = self.content.get("redacts")
        return value if isinstance(value, str) else None

    @property
    def prev_event_ids(self) -> list[str]:
        return _event_refs(self._pdu.get("prev_events", []))

    @property
    def auth_event_ids(self) -> list[str]:
        return _event_refs(self._pdu.get("auth_events", []))

    def __repr__(self) -> str:
        return f"<Event {self._event_id} {self.type} {self.state_key!r}>"


def _event_refs(value: Any) -> list[str]:
    """prev_events / auth_events: `[[id, {hashes}], ...]` in v1/v2, `[id, ...]` from v3 on."""
    if not isinstance(value, list):
        return []
    refs: list[str] = []
    for item in value:
        if isinstance(item, str):
            refs.append(item)
        elif isinstance(item, list) and item and isinstance(item[0], str):
            refs.append(item[0])
    return refs
