"""GET /sync: everything that changed for one device between its token and now.

spec: client-server-api "Syncing". The response's `next_batch` is read before anything
else: each stream's position is one up to which everything has committed, and each part
of the response is read up to that position, so the next sync continues exactly where
this one stopped: no gaps, no duplicates. With `timeout`, an incremental sync that finds
nothing waits on the notifier (never polling the database) and answers as soon as
something for the user happens, or with an empty response and a new token at the end.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache

from ranvier.errors import MatrixError
from ranvier.protocol.filters import DEFAULT_EVENT_LIMIT, Filter
from ranvier.services.filters import FilterService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.services.sync.account_data import AccountDataReader
from ranvier.services.sync.rooms import RoomExtras, RoomsBuilder, RoomsRequest
from ranvier.services.sync.sources import (
    DeviceListsSource,
    PresenceSource,
    PushRulesSource,
    ReceiptsSource,
    SyncSource,
    ToDeviceSource,
    TypingSource,
    UnreadCounts,
)
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database
from ranvier.storage.sync import UserMemberships
from ranvier.streams.notifier import Notifier
from ranvier.streams.sync_token import (
    DEVICE_LISTS,
    PRESENCE,
    RECEIPTS,
    TO_DEVICE,
    TYPING,
    SyncToken,
)

JsonDict = dict[str, Any]

# memberships in which a room's changes concern the user
ACTIVE = ("join", "invite", "knock")
SET_PRESENCE_VALUES = ("online", "offline", "unavailable")
# answers kept for repeated requests (caches.sync_response_cache_duration)
MAX_CACHED_RESPONSES = 10_000
# a long-poll woken at once that then finds nothing pauses this long before looking again
MIN_WAIT_SECONDS = 0.005
# users whose room lists are remembered between syncs
MAX_CACHED_ROOM_LISTS = 50_000


@dataclass(frozen=True)
class SyncRequest:
    user_id: str
    device_id: str | None
    since: SyncToken | None
    timeout_ms: int
    full_state: bool
    set_presence: str | None
    # a filter ID or inline JSON, as given
    filter: str | None


class SyncService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        filters: FilterService,
        notifier: Notifier,
        rooms: RoomsBuilder,
        account_data: AccountDataReader,
        *,
        max_timeline_limit: int,
        response_cache_ms: int = 0,
    ) -> None:
        self._db = db
        self._sender = sender
        self._filters = filters
        self._notifier = notifier
        self._rooms = rooms
        self._account_data = account_data
        self._max_timeline_limit = max_timeline_limit
        self.typing: TypingSource | None = None
        self.receipts: ReceiptsSource | None = None
        self.presence: PresenceSource | None = None
        self.to_device: ToDeviceSource | None = None
        self.device_lists: DeviceListsSource | None = None
        self.unread: UnreadCounts | None = None
        # as Synapse: a client that repeats a request (its connection dropped, or a second
        # tab) shares the one in flight, and gets the same answer for a while after
        # user_id -> (room-events position, rooms whose changes concern them): unchanged
        # while that position is, which lets a sync that finds nothing skip the rooms
        self._user_to_rooms: LRUCache[str, tuple[int, list[str]]] = LRUCache(MAX_CACHED_ROOM_LISTS)
        self._request_to_task: dict[SyncRequest, asyncio.Task[JsonDict]] = {}
        self._request_to_response: TTLCache[SyncRequest, JsonDict] | None = (
            TTLCache(MAX_CACHED_RESPONSES, response_cache_ms / 1000)
            if response_cache_ms > 0
            else None
        )

    def set_push_rules(self, source: PushRulesSource) -> None:
        self._account_data.push_rules = source

    # -- the endpoint ------------------------------------------------------------------------

    async def sync(self, request: SyncRequest) -> JsonDict:
        if self._request_to_response is not None:
            cached = self._request_to_response.get(request)
            if cached is not None:
                return cached
        task = self._request_to_task.get(request)
        if task is None:
            task = asyncio.create_task(self._sync(request))
            self._request_to_task[request] = task
            task.add_done_callback(lambda done: self._finished(request, done))
        # shielded: one client giving up must not cancel the answer others wait for
        return await asyncio.shield(task)

    def _finished(self, request: SyncRequest, task: asyncio.Task[JsonDict]) -> None:
        self._request_to_task.pop(request, None)
        cache = self._request_to_response
        if cache is None or task.cancelled() or task.exception() is not None:
            return
        # an empty answer is not kept: the same request a moment later may find news
        if not _is_empty(task.result()):
            cache[request] = task.result()

    async def _sync(self, request: SyncRequest) -> JsonDict:
        sync_filter = await self._load_filter(request.user_id, request.filter)
        if request.set_presence is not None and request.set_presence not in SET_PRESENCE_VALUES:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"set_presence must be one of {', '.join(SET_PRESENCE_VALUES)}",
            )
        if self.presence is not None:
            await self.presence.set_presence_from_sync(
                request.user_id, request.set_presence or "online"
            )
        since = request.since
        if since is not None and self.to_device is not None and request.device_id is not None:
            # the client holds this token: it has what the response carrying it handed out
            await self.to_device.ack(request.user_id, request.device_id, since.to_device)
        deadline = time.monotonic() + request.timeout_ms / 1000
        while True:
            body, token, room_ids = await self._sync_once(request, sync_filter)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if since is None or request.full_state or not _is_empty(body) or remaining_ms <= 0:
                break
            # everything up to `token` has been looked at: wait for what comes after
            waited = time.monotonic()
            await self._notifier.wait(request.user_id, room_ids, token, remaining_ms)
            if self._notifier.closed:
                # shutting down: the empty answer is exact up to its token, from which the
                # client's next sync continues, whichever process serves it
                break
            if time.monotonic() - waited < MIN_WAIT_SECONDS:
                # notified of a position a source does not hand out yet: let it catch up
                # rather than spin
                await asyncio.sleep(MIN_WAIT_SECONDS)
        if self.device_lists is not None and request.device_id is not None:
            # spec: e2e extensions to sync - a device hears its key counts every time
            body.update(await self.device_lists.key_counts(request.user_id, request.device_id))
        return body

    async def _load_filter(self, user_id: str, value: str | None) -> Filter:
        if value is None:
            return Filter()
        try:
            return await self._filters.load(user_id, value)
        except MatrixError as exc:
            if exc.status == 404:
                # as Synapse: an unknown filter ID is a bad parameter of /sync
                raise MatrixError(400, "M_INVALID_PARAM", "No such filter") from None
            raise

    # -- one pass ----------------------------------------------------------------------------

    def _position(self, source: SyncSource | None, since: SyncToken | None, stream: str) -> int:
        if source is not None:
            return source.current_position()
        return since.get(stream) if since is not None else 0

    async def _nothing_new(
        self,
        request: SyncRequest,
        sync_filter: Filter,
        since: SyncToken,
        events_upto: int,
        upto: dict[str, int],
    ) -> tuple[JsonDict, SyncToken, list[str]] | None:
        """The answer when no stream but account data moved past the token (the common
        case for a long-poll's checks): one query instead of a pass over every room.
        None when something did move, or the user's rooms are not remembered."""
        remembered = self._user_to_rooms.get(request.user_id)
        push_rules = self._account_data.push_rules
        if (
            remembered is None
            or remembered[0] != events_upto
            or events_upto != since.events
            or any(position != since.get(stream) for stream, position in upto.items())
            or (push_rules is not None and push_rules.current_position() != since.push_rules)
        ):
            return None
        account_data = await self._account_data.updates(
            request.user_id, request.device_id, since.account_data, since.push_rules, sync_filter
        )
        if account_data.global_events or account_data.room_events:
            return None
        token = since.advanced(account_data=account_data.position)
        return {"next_batch": str(token)}, token, remembered[1]

    async def _sync_once(
        self, request: SyncRequest, sync_filter: Filter
    ) -> tuple[JsonDict, SyncToken, list[str]]:
        since = request.since
        start = since or SyncToken()
        full = since is None or request.full_state
        user_id, device_id = request.user_id, request.device_id
        # positions first: every read below stops at them
        events_upto = self._sender.positions.current
        upto = {
            TYPING: self._position(self.typing, since, TYPING),
            RECEIPTS: self._position(self.receipts, since, RECEIPTS),
            PRESENCE: self._position(self.presence, since, PRESENCE),
            TO_DEVICE: self._position(self.to_device, since, TO_DEVICE),
            DEVICE_LISTS: self._position(self.device_lists, since, DEVICE_LISTS),
        }
        if since is not None and not full:
            quiet = await self._nothing_new(request, sync_filter, since, events_upto, upto)
            if quiet is not None:
                return quiet
        memberships = await sync_store.get_memberships(
            self._db, user_id, 0 if full else start.events, events_upto
        )
        active_rooms = _active_rooms(memberships)
        self._user_to_rooms[user_id] = (events_upto, active_rooms)
        joined = [r for r, m in memberships.now.items() if m.membership == "join"]
        account_data = await self._account_data.updates(
            user_id, device_id, None if full else start.account_data, start.push_rules, sync_filter
        )
        extras = RoomExtras(account_data=account_data.room_events)
        ephemeral_filter = sync_filter.room.ephemeral
        for source in (self.typing, self.receipts):
            if source is None or ephemeral_filter.blocks_everything():
                continue
            from_pos = 0 if full else start.get(source.stream_name)
            if from_pos == upto[source.stream_name]:
                continue
            updates = await source.get_updates(
                user_id, device_id, joined, from_pos, upto[source.stream_name]
            )
            for room_id, event in updates.items():
                if ephemeral_filter.allows_room(room_id) and ephemeral_filter.matches(event):
                    extras.ephemeral.setdefault(room_id, []).append(event)
        changed = None if full else self._sender.room_changes.changed_since(joined, start.events)
        if self.unread is not None:
            # counts are served only with the rooms a response shows
            shown = joined
            if changed is not None:
                moved = changed | extras.ephemeral.keys() | extras.account_data.keys()
                shown = [r for r in joined if r in moved]
            extras.unread = await self.unread.unread_counts(user_id, shown)

        limit = min(
            sync_filter.room.timeline.limit_or(DEFAULT_EVENT_LIMIT), self._max_timeline_limit
        )
        rooms = await self._rooms.build(
            RoomsRequest(
                user_id=user_id,
                device_id=device_id,
                since=0 if full else start.events,
                upto=events_upto,
                full=full,
                filter=sync_filter,
                timeline_limit=limit,
                changed_rooms=changed,
            ),
            memberships,
            extras,
        )
        to_device: list[JsonDict] = []
        if self.to_device is not None and device_id is not None:
            # to-device messages wait for their device even across full_state syncs
            to_device = await self.to_device.get_updates(
                user_id, device_id, (), start.to_device, upto[TO_DEVICE]
            )
            # a bounded batch: the token resumes after the last message handed out
            upto[TO_DEVICE] = to_device.position
        token = SyncToken(
            events=events_upto,
            account_data=account_data.position,
            receipts=upto[RECEIPTS],
            typing=upto[TYPING],
            presence=upto[PRESENCE],
            to_device=upto[TO_DEVICE],
            device_lists=upto[DEVICE_LISTS],
            push_rules=account_data.push_rules_position,
        )
        body: JsonDict = {"next_batch": str(token)}
        if rooms:
            body["rooms"] = rooms
        if account_data.global_events:
            body["account_data"] = {"events": account_data.global_events}
        if to_device:
            body["to_device"] = {"events": to_device}
        if self.device_lists is not None and since is not None:
            device_lists = await self.device_lists.get_updates(
                user_id, memberships, since, events_upto, upto[DEVICE_LISTS], changed
            )
            if device_lists:
                body["device_lists"] = device_lists
        if self.presence is not None and not sync_filter.presence.blocks_everything():
            presence = await self.presence.get_updates(
                user_id, device_id, joined, 0 if full else start.presence, upto[PRESENCE]
            )
            presence = [e for e in presence if sync_filter.presence.matches(e)]
            if presence:
                body["presence"] = {"events": presence}
        return body, token, active_rooms


def _active_rooms(memberships: UserMemberships) -> list[str]:
    return [r for r, m in memberships.now.items() if m.membership in ACTIVE]


def _is_empty(body: JsonDict) -> bool:
    return not any(
        key in body for key in ("rooms", "account_data", "presence", "to_device", "device_lists")
    )
