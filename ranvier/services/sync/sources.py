"""The contract between /sync and the streams other services write.

Each source owns one stream of the sync token. It says how far that stream may be read
(`current_position`: everything up to it has committed) and what changed for a user's
device between two positions (`from_pos` exclusive, `to_pos` inclusive; `from_pos` 0 means
an initial sync). On every change the source calls
`Notifier.notify(stream_name, position, rooms=..., users=...)` so long-polls wake.

A source knows nothing of the /sync response's shape: a section (sections.py) puts it
there, so other views of the same stream (sliding sync) can wrap it their own way. A
stream with no section keeps the client's position in tokens and adds nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol, runtime_checkable

from ranvier.storage.sync import UserMemberships
from ranvier.streams.sync_token import SyncToken

JsonDict = dict[str, Any]


@runtime_checkable
class SyncSource(Protocol):
    stream_name: str

    def current_position(self) -> int: ...


class TypingSource(SyncSource, Protocol):
    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
    ) -> dict[str, JsonDict]:
        """{room_id: m.typing ephemeral event} for rooms whose typing set changed."""
        ...


class ReceiptsSource(SyncSource, Protocol):
    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
    ) -> dict[str, JsonDict]:
        """{room_id: m.receipt ephemeral event}; m.read.private only for its owner."""
        ...


class PresenceSource(SyncSource, Protocol):
    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
        *,
        include_offline: bool = False,
    ) -> list[JsonDict]:
        """m.presence events for users sharing a room with `user_id` (and the user);
        read from 0, users simply offline only with `include_offline`."""
        ...

    async def set_presence_from_sync(self, user_id: str, presence: str) -> None:
        """Apply `set_presence` of a /sync request ("online", "unavailable", "offline")."""
        ...


class ToDeviceEvents(list[JsonDict]):
    """To-device events for one sync response, oldest first, and the to_device position
    that response's token must carry: below `to_pos` when the source left messages out
    (it hands out a bounded number per sync), so the next sync acknowledges only what was
    handed out and resumes right after it."""

    def __init__(self, events: list[JsonDict], position: int) -> None:
        super().__init__(events)
        self.position = position


class ToDeviceSource(SyncSource, Protocol):
    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
        limit: int = ...,
    ) -> ToDeviceEvents:
        """The to-device events for the device, oldest first, at most `limit` (the
        source's own bound when not given)."""
        ...

    async def ack(self, user_id: str, device_id: str, up_to_pos: int) -> None:
        """The device synced with a token past `up_to_pos`: delete what it has seen."""
        ...


class PushRulesSource(SyncSource, Protocol):
    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
    ) -> JsonDict | None:
        """The `m.push_rules` global account data content if it changed, else None."""
        ...


class DeviceListsSource(SyncSource, Protocol):
    async def get_updates(
        self,
        user_id: str,
        memberships: UserMemberships,
        since: SyncToken,
        events_upto: int,
        to_pos: int,
        moved_rooms: set[str] | None = None,
    ) -> JsonDict | None:
        """`device_lists` ({"changed", "left"}) of an incremental sync, or None if empty:
        device list changes up to `to_pos` and membership changes up to `events_upto`;
        `moved_rooms`, when known, are the only rooms with events since the token."""
        ...

    async def key_counts(self, user_id: str, device_id: str) -> JsonDict:
        """`device_one_time_keys_count` and `device_unused_fallback_key_types`."""
        ...


class UnreadCounts(Protocol):
    async def unread_counts(self, user_id: str, room_ids: Collection[str]) -> dict[str, JsonDict]:
        """{room_id: {"notification_count", "highlight_count", "threads": {thread_id: {...}}}}
        for the rooms with anything unread; rooms missing count as zero."""
        ...
