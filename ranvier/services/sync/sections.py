"""The parts of a /sync response that streams other than the rooms' events feed.

A section puts one stream source (sources.py) into the response: the sync service holds
a list of them, given at construction, and every pass loops over it. To add a stream to
/sync, write its source (which owns a stream of the sync token and wakes long-polls
through the notifier) and a section here, and list the section where the server is
wired; the sync service itself does not change.

The sources know nothing of the response's shape, so other views of the same streams
(sliding sync's extensions) wrap the same sources in their own sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.protocol.filters import Filter
from ranvier.services.sync.rooms import RoomExtras
from ranvier.services.sync.sources import (
    DeviceListsSource,
    PresenceSource,
    ReceiptsSource,
    ToDeviceSource,
    TypingSource,
)
from ranvier.storage.sync import UserMemberships
from ranvier.streams.sync_token import SyncToken

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class SyncPass:
    """One look at the streams for one device: everything a section may read from."""

    user_id: str
    device_id: str | None
    # the client's token; None on an initial sync
    since: SyncToken | None
    # an initial or full_state sync: sections that can resend everything do
    full: bool
    filter: Filter
    memberships: UserMemberships
    # rooms the user is joined to now
    joined: list[str]
    # how far the rooms' events are read, and the rooms with events since the token
    # (None when not known, as on a full sync)
    events_upto: int
    changed_rooms: set[str] | None

    def start(self, stream: str) -> int:
        """Where reading `stream` begins: 0 (everything) on a full sync."""
        if self.full or self.since is None:
            return 0
        return self.since.get(stream)


@dataclass
class SyncParts:
    """What the sections found: per-room additions, which the rooms part places, and
    top-level sections of the response, in the order the sections are listed."""

    rooms: RoomExtras = field(default_factory=RoomExtras)
    body: JsonDict = field(default_factory=dict)


@dataclass(frozen=True)
class SyncRequestInfo:
    """Who is syncing, for the once-per-request steps."""

    user_id: str
    device_id: str | None
    since: SyncToken | None
    set_presence: str


class SyncSection(Protocol):
    # the stream of the sync token this section owns
    stream: str

    def current_position(self) -> int:
        """How far the stream may be read now: everything up to it has committed. Read
        before anything else in a pass, so the pass never reads past its token."""
        ...

    async def begin(self, request: SyncRequestInfo) -> None:
        """Once per request, before any pass: what syncing itself changes."""
        ...

    async def read(self, sync: SyncPass, upto: int, parts: SyncParts) -> int:
        """Add what changed in (sync.start(stream), upto] to `parts`; return the position
        the response's token carries (`upto`, or less if the section held some back)."""
        ...

    async def finish(self, request: SyncRequestInfo, body: JsonDict) -> None:
        """Once per response, after the last pass: what every response carries, even an
        empty one (it does not make the response count as news)."""
        ...


class _Section:
    """No per-request steps: most sections only read."""

    async def begin(self, request: SyncRequestInfo) -> None:
        return None

    async def finish(self, request: SyncRequestInfo, body: JsonDict) -> None:
        return None


class RoomEphemeralSection(_Section):
    """Typing or receipts: one ephemeral event per room that changed, into the rooms'
    `ephemeral` sections, as the filter allows."""

    def __init__(self, source: TypingSource | ReceiptsSource) -> None:
        self._source = source
        self.stream = source.stream_name

    def current_position(self) -> int:
        return self._source.current_position()

    async def read(self, sync: SyncPass, upto: int, parts: SyncParts) -> int:
        ephemeral_filter = sync.filter.room.ephemeral
        from_pos = sync.start(self.stream)
        if ephemeral_filter.blocks_everything() or from_pos == upto:
            return upto
        updates = await self._source.get_updates(
            sync.user_id, sync.device_id, sync.joined, from_pos, upto
        )
        for room_id, event in updates.items():
            if ephemeral_filter.allows_room(room_id) and ephemeral_filter.matches(event):
                parts.rooms.ephemeral.setdefault(room_id, []).append(event)
        return upto


class PresenceSection(_Section):
    """`presence`: room-mates' presence changes; a sync also marks its user online
    (or as `set_presence` says)."""

    def __init__(self, source: PresenceSource) -> None:
        self._source = source
        self.stream = source.stream_name

    def current_position(self) -> int:
        return self._source.current_position()

    async def begin(self, request: SyncRequestInfo) -> None:
        await self._source.set_presence_from_sync(request.user_id, request.set_presence)

    async def read(self, sync: SyncPass, upto: int, parts: SyncParts) -> int:
        presence_filter = sync.filter.presence
        if presence_filter.blocks_everything():
            return upto
        start = sync.start(self.stream)
        events = await self._source.get_updates(
            sync.user_id, sync.device_id, sync.joined, start, upto
        )
        newly_joined = [r for r in sync.joined if r in sync.memberships.joined_since]
        if start > 0 and newly_joined:
            # as Synapse: a user who joined rooms since the token learns the presence of
            # their new room-mates, changed or not, offline included
            known = {e["sender"] for e in events}
            for event in await self._source.get_updates(
                sync.user_id, sync.device_id, newly_joined, 0, upto, include_offline=True
            ):
                if event["sender"] not in known:
                    events.append(event)
        events = [e for e in events if presence_filter.matches(e)]
        if events:
            parts.body["presence"] = {"events": events}
        return upto


class ToDeviceSection(_Section):
    """`to_device`: the device's inbox, a bounded batch at a time, deleted once the
    device syncs with a token past the response that carried it."""

    def __init__(self, source: ToDeviceSource) -> None:
        self._source = source
        self.stream = source.stream_name

    def current_position(self) -> int:
        return self._source.current_position()

    async def begin(self, request: SyncRequestInfo) -> None:
        if request.since is not None and request.device_id is not None:
            # the client holds this token: it has what the response carrying it handed out
            await self._source.ack(
                request.user_id, request.device_id, request.since.get(self.stream)
            )

    async def read(self, sync: SyncPass, upto: int, parts: SyncParts) -> int:
        if sync.device_id is None:
            return upto
        # messages wait for their device even across full_state syncs: read from the
        # token whatever `full` says
        start = sync.since.get(self.stream) if sync.since is not None else 0
        events = await self._source.get_updates(sync.user_id, sync.device_id, (), start, upto)
        if events:
            parts.body["to_device"] = {"events": list(events)}
        # a bounded batch: the token resumes after the last message handed out
        return events.position


class DeviceListsSection(_Section):
    """`device_lists` on incremental syncs, and the device's key counts on every
    response (spec: end-to-end encryption, extensions to sync)."""

    def __init__(self, source: DeviceListsSource) -> None:
        self._source = source
        self.stream = source.stream_name

    def current_position(self) -> int:
        return self._source.current_position()

    async def read(self, sync: SyncPass, upto: int, parts: SyncParts) -> int:
        if sync.since is None:
            return upto
        changes = await self._source.get_updates(
            sync.user_id,
            sync.memberships,
            sync.since,
            sync.events_upto,
            upto,
            sync.changed_rooms,
        )
        if changes:
            parts.body["device_lists"] = changes
        return upto

    async def finish(self, request: SyncRequestInfo, body: JsonDict) -> None:
        if request.device_id is not None:
            body.update(await self._source.key_counts(request.user_id, request.device_id))
