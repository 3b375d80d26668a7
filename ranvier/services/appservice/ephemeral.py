"""What a transaction carries besides room events.

MSC2409 (spec v1.13 `ephemeral`), for services whose registration asks
(`receive_ephemeral`, or the older `push_ephemeral` names): m.typing and m.receipt of the
rooms the service is interested in, each with its `room_id`, and m.presence of the users
it is interested in (its users, and users joined to a room it is interested in). Sent
under `ephemeral` and under its unstable twin `de.sorunome.msc2409.ephemeral`, which
bridges written before v1.13 read. Private receipts are never sent.

MSC3202, for services with `org.matrix.msc3202: true` (encrypting bridges): to-device
messages for its users' devices (`de.sorunome.msc2409.to_device`, each with
`to_user_id` and `to_device_id`), the users it is interested in whose devices changed
(`org.matrix.msc3202.device_lists`), and, in every transaction, the one-time key counts
and unused fallback key types of the devices of the users the transaction is about (its
sender, its users who sent the events, the recipients of the to-device messages), as
Synapse computes them. `left` is always empty, as in Synapse.

Receipts, presence, to-device and device lists resume from stored positions; typing
lives in memory (typing.py), so its position does too, and a restart forgets who typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ranvier.clock import now_ms
from ranvier.config.appservices import AppService
from ranvier.protocol.events import Event
from ranvier.services.appservice.interest import AppServiceInterest
from ranvier.services.presence import presence_content
from ranvier.services.receipts import READ_PRIVATE, build_receipt_events
from ranvier.services.typing import TYPING_STREAM
from ranvier.storage.appservices import AppServiceStreams, StreamPositions
from ranvier.storage.device_inbox import TO_DEVICE_STREAM
from ranvier.storage.device_lists import DEVICE_LISTS_STREAM
from ranvier.storage.presence import PRESENCE_STREAM
from ranvier.storage.receipts import RECEIPTS_STREAM

JsonDict = dict[str, Any]

EPHEMERAL_STREAMS = (TYPING_STREAM, RECEIPTS_STREAM, PRESENCE_STREAM)
MSC3202_STREAMS = (TO_DEVICE_STREAM, DEVICE_LISTS_STREAM)
# to-device messages per transaction (those of one send are never split)
MAX_TO_DEVICE = 100
# users whose devices' key counts one transaction carries
MAX_KEY_COUNT_USERS = 100

# user_id -> their device IDs
DevicesOf = Callable[[str], Awaitable[list[str]]]
# (user_id, device_id) -> {"device_one_time_keys_count", "device_unused_fallback_key_types"}
KeyCounts = Callable[[str, str], Awaitable[JsonDict]]


@dataclass(frozen=True)
class StreamSources:
    """The services that own the other streams: how far each has committed, and what
    only they know (typing, devices, key counts)."""

    receipts_position: Callable[[], int]
    presence_position: Callable[[], int]
    to_device_position: Callable[[], int]
    device_lists_position: Callable[[], int]
    typing_position: Callable[[], int]
    # room_id -> who types there, for rooms whose typing changed after a position
    typing_changed_since: Callable[[int], dict[str, list[str]]]
    devices_of: DevicesOf
    key_counts: KeyCounts


@dataclass
class Extras:
    ephemeral: list[JsonDict] = field(default_factory=list)
    to_device: list[JsonDict] = field(default_factory=list)
    device_lists_changed: list[str] = field(default_factory=list)
    typing_position: int = 0

    @property
    def empty(self) -> bool:
        return not (self.ephemeral or self.to_device or self.device_lists_changed)


class EphemeralCollector:
    def __init__(
        self, streams: AppServiceStreams, interest: AppServiceInterest, sources: StreamSources
    ) -> None:
        self._streams = streams
        self._interest = interest
        self._sources = sources

    def wants(self, service: AppService, stream: str) -> bool:
        if stream in EPHEMERAL_STREAMS:
            return service.receive_ephemeral
        return stream in MSC3202_STREAMS and service.msc3202

    def typing_position(self) -> int:
        return self._sources.typing_position()

    def positions(self) -> StreamPositions:
        """The current positions of the streams (events: left 0, the sender's own)."""
        sources = self._sources
        return StreamPositions(
            events=0,
            receipts=sources.receipts_position(),
            presence=sources.presence_position(),
            to_device=sources.to_device_position(),
            device_lists=sources.device_lists_position(),
        )

    async def collect(
        self,
        service: AppService,
        since: StreamPositions,
        heads: StreamPositions,
        typing_since: int,
    ) -> tuple[Extras, StreamPositions]:
        """What the service gets of each stream in (since, heads], and how far that
        reaches. Streams it does not get move to their heads."""
        extras = Extras(typing_position=self._sources.typing_position())
        reached = heads
        if service.receive_ephemeral:
            extras.ephemeral += await self._typing(service, typing_since)
            extras.ephemeral += await self._receipts(service, since.receipts, heads.receipts)
            extras.ephemeral += await self._presence(service, since.presence, heads.presence)
        if service.msc3202:
            extras.to_device, to_device_reached = await self._to_device(
                service, since.to_device, heads.to_device
            )
            reached = StreamPositions(
                events=heads.events,
                receipts=heads.receipts,
                presence=heads.presence,
                to_device=to_device_reached,
                device_lists=heads.device_lists,
            )
            extras.device_lists_changed = await self._device_lists(
                service, since.device_lists, heads.device_lists
            )
        return extras, reached

    async def _typing(self, service: AppService, since: int) -> list[JsonDict]:
        changed = self._sources.typing_changed_since(since)
        if not changed:
            return []
        rooms = await self._interest.interesting_rooms(service, changed.keys())
        return [
            {"type": "m.typing", "room_id": room_id, "content": {"user_ids": changed[room_id]}}
            for room_id in sorted(rooms)
        ]

    async def _receipts(self, service: AppService, since: int, up_to: int) -> list[JsonDict]:
        if up_to <= since:
            return []
        public = [
            receipt
            for receipt in await self._streams.receipts_between(since, up_to)
            if receipt.receipt_type != READ_PRIVATE
        ]
        if not public:
            return []
        rooms = await self._interest.interesting_rooms(
            service, {receipt.room_id for receipt in public}
        )
        by_room = build_receipt_events(
            [receipt for receipt in public if receipt.room_id in rooms], service.sender
        )
        return [{**event, "room_id": room_id} for room_id, event in sorted(by_room.items())]

    async def _presence(self, service: AppService, since: int, up_to: int) -> list[JsonDict]:
        if up_to <= since:
            return []
        states = await self._streams.presence_between(since, up_to)
        if not states:
            return []
        wanted = await self._interest.interested_in_users(
            service, {state.user_id for state in states}
        )
        now = now_ms()
        return [
            {"type": "m.presence", "sender": state.user_id, "content": presence_content(state, now)}
            for state in states
            if state.user_id in wanted
        ]

    async def _to_device(
        self, service: AppService, since: int, up_to: int
    ) -> tuple[list[JsonDict], int]:
        if up_to <= since:
            return [], up_to
        recipients = [
            user_id
            for user_id in await self._streams.inbox_recipients(since, up_to)
            if service.is_user_in_namespace(user_id)
        ]
        if not recipients:
            return [], up_to
        messages = await self._streams.inbox_between(recipients, since, up_to, MAX_TO_DEVICE + 1)
        reached = up_to
        if len(messages) > MAX_TO_DEVICE:
            # the rest next time, cut between two sends: one send's messages share a position
            reached = messages[MAX_TO_DEVICE - 1].stream_id
            messages = await self._streams.inbox_between(recipients, since, reached)
        return [
            {**message.event, "to_user_id": message.user_id, "to_device_id": message.device_id}
            for message in messages
        ], reached

    async def _device_lists(self, service: AppService, since: int, up_to: int) -> list[str]:
        if up_to <= since:
            return []
        changed = await self._streams.device_list_changes(since, up_to)
        if not changed:
            return []
        return sorted(await self._interest.interested_in_users(service, changed))

    async def body_fields(
        self, service: AppService, events: Sequence[Event], extras: Extras
    ) -> JsonDict:
        """The transaction's fields besides `events`."""
        fields: JsonDict = {}
        if extras.ephemeral:
            fields["ephemeral"] = extras.ephemeral
            fields["de.sorunome.msc2409.ephemeral"] = extras.ephemeral
        if not service.msc3202:
            return fields
        if extras.to_device:
            fields["de.sorunome.msc2409.to_device"] = extras.to_device
        if extras.device_lists_changed:
            fields["org.matrix.msc3202.device_lists"] = {
                "changed": extras.device_lists_changed,
                "left": [],
            }
        users = [service.sender]
        users += [event.sender for event in events if service.is_user_in_namespace(event.sender)]
        users += [message["to_user_id"] for message in extras.to_device]
        counts: JsonDict = {}
        fallback: JsonDict = {}
        for user_id in list(dict.fromkeys(users))[:MAX_KEY_COUNT_USERS]:
            for device_id in await self._sources.devices_of(user_id):
                device_counts = await self._sources.key_counts(user_id, device_id)
                counts.setdefault(user_id, {})[device_id] = device_counts[
                    "device_one_time_keys_count"
                ]
                fallback.setdefault(user_id, {})[device_id] = device_counts[
                    "device_unused_fallback_key_types"
                ]
        if counts:
            fields["org.matrix.msc3202.device_one_time_keys_count"] = counts
            # the name MSC3202 used first, which older bridges read
            fields["org.matrix.msc3202.device_one_time_key_counts"] = counts
            fields["org.matrix.msc3202.device_unused_fallback_key_types"] = fallback
        return fields
