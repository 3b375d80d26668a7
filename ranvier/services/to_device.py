"""Send-to-device messaging (spec: client-server-api "Send-to-Device messaging").

Messages wait in the recipient device's inbox, each with its position in the to_device
stream, and /sync hands them out oldest first, at most MAX_PER_SYNC at a time. A message is
deleted once the device syncs with a token past the response that carried it: that proves
the client got it, and until then a retried sync gets it again.

Messages for other servers' users go to their servers through the `RemoteRelay`;
messages other servers send arrive through `deliver`.

When a response has to leave messages out, its token must not claim them: `get_updates`
returns a ToDeviceEvents list whose `position` is the to_device position that response's
token carries (the last message handed out, or `to_pos` when nothing was left out). The
next sync then acknowledges exactly what was handed out and resumes after it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from cachetools import LRUCache

from ranvier.clock import now_ms
from ranvier.services.stream_notify import Notify
from ranvier.services.sync.sources import ToDeviceEvents
from ranvier.storage.device_inbox import TO_DEVICE_STREAM, DeviceInboxStore
from ranvier.streams.change_log import ChangeLog

logger = logging.getLogger(__name__)

# as Synapse: a sync carries at most this many to-device messages
MAX_PER_SYNC = 100
# devices whose last acknowledged position is remembered (one that falls out costs a query)
ACKS_REMEMBERED = 100_000

JsonDict = dict[str, Any]


class RemoteRelay(Protocol):
    """Sends to-device messages to other servers' users (services/federation/to_device)."""

    async def send(
        self, sender: str, event_type: str, messages: Mapping[str, Mapping[str, JsonDict]]
    ) -> None: ...


def _domain(user_id: str) -> str:
    return user_id.partition(":")[2]


class ToDeviceService:
    stream_name = TO_DEVICE_STREAM

    def __init__(
        self,
        store: DeviceInboxStore,
        server_name: str,
        notify: Notify,
        position: int,
        relay: RemoteRelay | None = None,
    ) -> None:
        self._store = store
        self._server_name = server_name
        self._notify = notify
        self._position = position
        # None when we send nothing to other servers (send_federation off)
        self._relay = relay
        # user ID -> the position of their newest message, from this process's start on;
        # most syncs then know without a query that a device has nothing new or to delete
        self._user_changes = ChangeLog(position)
        self._device_to_acked: LRUCache[tuple[str, str], int] = LRUCache(maxsize=ACKS_REMEMBERED)

    @classmethod
    async def create(
        cls,
        store: DeviceInboxStore,
        server_name: str,
        notify: Notify,
        relay: RemoteRelay | None = None,
    ) -> ToDeviceService:
        return cls(store, server_name, notify, await store.current_stream_position(), relay)

    def current_position(self) -> int:
        return self._position

    async def send(
        self,
        sender: str,
        sender_device: str | None,
        event_type: str,
        txn_id: str,
        messages: Mapping[str, Mapping[str, JsonDict]],
    ) -> None:
        """PUT /sendToDevice/{eventType}/{txnId}"""
        local: dict[str, Mapping[str, JsonDict]] = {}
        remote: dict[str, Mapping[str, JsonDict]] = {}
        for user_id, by_device in messages.items():
            (local if _domain(user_id) == self._server_name else remote)[user_id] = by_device
        result = await self._store.send(sender, sender_device, event_type, txn_id, now_ms(), local)
        if result.repeated:
            # a retried transaction: it went out the first time
            return
        if remote:
            if self._relay is None:
                logger.warning(
                    "Dropping to-device messages of type %s from %s for %s other server(s): "
                    "this server does not send to other servers",
                    event_type,
                    sender,
                    len({_domain(user_id) for user_id in remote}),
                )
            else:
                await self._relay.send(sender, event_type, remote)
        self._delivered(result.position, result.recipients)

    async def deliver(
        self,
        sender: str,
        event_type: str,
        message_id: str,
        messages: Mapping[str, Mapping[str, JsonDict]],
    ) -> None:
        """Messages another server sent its user's to-device message to local users in;
        a `message_id` seen before from the same sender is not delivered again."""
        result = await self._store.send(sender, None, event_type, message_id, now_ms(), messages)
        self._delivered(result.position, result.recipients)

    def _delivered(self, position: int | None, recipients: set[str]) -> None:
        if position is None:
            return
        self._position = max(self._position, position)
        for user_id in recipients:
            self._user_changes.record(user_id, position)
        self._notify(TO_DEVICE_STREAM, position, users=recipients)

    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
        limit: int = MAX_PER_SYNC,
    ) -> ToDeviceEvents:
        """The device's messages after `from_pos` up to `to_pos`, oldest first, at most
        `limit` (sliding sync's clients may ask for fewer than MAX_PER_SYNC); see
        ToDeviceEvents.position for the next token."""
        if device_id is None or self._user_changes.changed_since([user_id], from_pos) == set():
            return ToDeviceEvents([], to_pos)
        limit = max(1, min(limit, MAX_PER_SYNC))
        messages = await self._store.get_messages(user_id, device_id, from_pos, to_pos, limit + 1)
        if len(messages) > limit:
            handed_out = messages[:limit]
            return ToDeviceEvents([m.event for m in handed_out], handed_out[-1].stream_id)
        return ToDeviceEvents([m.event for m in messages], to_pos)

    async def ack(self, user_id: str, device_id: str, up_to_pos: int) -> None:
        """The device synced with a token whose to_device position is `up_to_pos`: delete
        what it has been handed."""
        if up_to_pos <= 0:
            return
        key = (user_id, device_id)
        acked = self._device_to_acked.get(key)
        # everything up to the last ack is gone; nothing arrived since: nothing to delete
        if acked is not None and self._user_changes.changed_since([user_id], acked) == set():
            return
        await self._store.delete_messages(user_id, device_id, up_to_pos)
        self._device_to_acked[key] = max(up_to_pos, acked or 0)
