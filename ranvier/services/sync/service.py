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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache

from ranvier.errors import MatrixError
from ranvier.metrics import events as sync_metrics
from ranvier.metrics.blocks import measured
from ranvier.protocol.filters import DEFAULT_EVENT_LIMIT, Filter
from ranvier.services.filters import FilterService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.services.sync.account_data import AccountDataReader
from ranvier.services.sync.lazy_members import Held, LazyMemberMemory
from ranvier.services.sync.rooms import RoomsBuilder, RoomsRequest
from ranvier.services.sync.sections import SyncParts, SyncPass, SyncRequestInfo, SyncSection
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database
from ranvier.storage.sync import UserMemberships
from ranvier.streams.notifier import Notifier
from ranvier.streams.sync_token import SyncToken

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


@dataclass(frozen=True)
class _Pass:
    """What one look at the streams found."""

    body: JsonDict
    token: SyncToken
    # the rooms whose changes concern the user: a long-poll waits on them
    active_rooms: list[str]
    # nothing for the client but the token (and what every response carries)
    empty: bool


class SyncService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        filters: FilterService,
        notifier: Notifier,
        rooms: RoomsBuilder,
        account_data: AccountDataReader,
        sections: Sequence[SyncSection] = (),
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
        # the other streams, in the order their parts appear in a response; a stream with
        # no section keeps the client's position in the token and adds nothing
        self._sections = tuple(sections)
        self._max_timeline_limit = max_timeline_limit
        # user_id -> (room-events position, rooms whose changes concern them): unchanged
        # while that position is, which lets a sync that finds nothing skip the rooms
        self._user_to_rooms: LRUCache[str, tuple[int, list[str]]] = LRUCache(MAX_CACHED_ROOM_LISTS)
        # the membership events each lazy-loading device holds, by the token it was given
        self._lazy_members = LazyMemberMemory()
        # as Synapse: a client that repeats a request (its connection dropped, or a second
        # tab) shares the one in flight, and gets the same answer for a while after
        self._request_to_task: dict[SyncRequest, asyncio.Task[_Pass]] = {}
        self._request_to_response: TTLCache[SyncRequest, JsonDict] | None = (
            TTLCache(MAX_CACHED_RESPONSES, response_cache_ms / 1000)
            if response_cache_ms > 0
            else None
        )

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
        return (await asyncio.shield(task)).body

    def _finished(self, request: SyncRequest, task: asyncio.Task[_Pass]) -> None:
        self._request_to_task.pop(request, None)
        cache = self._request_to_response
        if cache is None or task.cancelled() or task.exception() is not None:
            return
        # an empty answer is not kept: the same request a moment later may find news
        if not task.result().empty:
            cache[request] = task.result().body

    async def _sync(self, request: SyncRequest) -> _Pass:
        sync_filter = await self._load_filter(request.user_id, request.filter)
        if request.set_presence is not None and request.set_presence not in SET_PRESENCE_VALUES:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"set_presence must be one of {', '.join(SET_PRESENCE_VALUES)}",
            )
        info = SyncRequestInfo(
            request.user_id, request.device_id, request.since, request.set_presence or "online"
        )
        for section in self._sections:
            await section.begin(info)
        skips_redundant = _skips_redundant_members(sync_filter)
        held: Held | None = None
        if skips_redundant and request.since is not None:
            held = self._lazy_members.held(request.user_id, request.device_id, str(request.since))
        deadline = time.monotonic() + request.timeout_ms / 1000
        while True:
            found = await self._sync_once(request, sync_filter, held)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if request.since is None or request.full_state or not found.empty or remaining_ms <= 0:
                break
            # everything up to the token has been looked at: wait for what comes after
            await self._wait(request.user_id, found, remaining_ms)
            if self._notifier.closed:
                # shutting down: the empty answer is exact up to its token, from which the
                # client's next sync continues, whichever process serves it
                break
        if skips_redundant:
            self._lazy_members.remember(
                request.user_id,
                request.device_id,
                None if request.since is None else str(request.since),
                str(found.token),
                _member_event_ids(found.body),
            )
        for section in self._sections:
            await section.finish(info, found.body)
        sync_metrics.sync_answered(
            initial=request.since is None,
            full_state=request.full_state,
            lazy_loaded=sync_filter.room.state.lazy_load_members,
            empty=found.empty,
        )
        return found

    async def _wait(self, user_id: str, found: _Pass, remaining_ms: int) -> None:
        waited = time.monotonic()
        await self._notifier.wait(user_id, found.active_rooms, found.token, remaining_ms)
        if not self._notifier.closed and time.monotonic() - waited < MIN_WAIT_SECONDS:
            # notified of a position a source does not hand out yet: let it catch up
            # rather than spin
            await asyncio.sleep(MIN_WAIT_SECONDS)

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

    async def _nothing_new(
        self,
        request: SyncRequest,
        sync_filter: Filter,
        since: SyncToken,
        events_upto: int,
        upto: dict[str, int],
    ) -> _Pass | None:
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
        return _Pass({"next_batch": str(token)}, token, remembered[1], empty=True)

    @measured("sync_pass")
    async def _sync_once(
        self, request: SyncRequest, sync_filter: Filter, held: Held | None
    ) -> _Pass:
        since = request.since
        full = since is None or request.full_state
        # positions first: every read below stops at them
        events_upto = self._sender.positions.current
        upto = {section.stream: section.current_position() for section in self._sections}
        if since is not None and not full:
            quiet = await self._nothing_new(request, sync_filter, since, events_upto, upto)
            if quiet is not None:
                return quiet
        start = since or SyncToken()
        memberships = await sync_store.get_memberships(
            self._db, request.user_id, 0 if full else start.events, events_upto
        )
        active_rooms = _active_rooms(memberships)
        self._user_to_rooms[request.user_id] = (events_upto, active_rooms)
        joined = [r for r, m in memberships.now.items() if m.membership == "join"]
        account_data = await self._account_data.updates(
            request.user_id,
            request.device_id,
            None if full else start.account_data,
            start.push_rules,
            sync_filter,
        )
        sync = SyncPass(
            user_id=request.user_id,
            device_id=request.device_id,
            since=since,
            full=full,
            filter=sync_filter,
            memberships=memberships,
            joined=joined,
            events_upto=events_upto,
            changed_rooms=(
                None if full else self._sender.room_changes.changed_since(joined, start.events)
            ),
        )
        parts = SyncParts()
        parts.rooms.account_data = account_data.room_events
        for section in self._sections:
            upto[section.stream] = await section.read(sync, upto[section.stream], parts)
        rooms = await self._rooms.build(
            self._rooms_request(sync, start, held), memberships, parts.rooms
        )
        token = start.advanced(
            events=events_upto,
            account_data=account_data.position,
            push_rules=account_data.push_rules_position,
            **upto,
        )
        body: JsonDict = {"next_batch": str(token)}
        if rooms:
            body["rooms"] = rooms
        if account_data.global_events:
            body["account_data"] = {"events": account_data.global_events}
        body.update(parts.body)
        empty = not rooms and not account_data.global_events and not parts.body
        return _Pass(body, token, active_rooms, empty)

    def _rooms_request(self, sync: SyncPass, start: SyncToken, held: Held | None) -> RoomsRequest:
        limit = sync.filter.room.timeline.limit_or(DEFAULT_EVENT_LIMIT)
        return RoomsRequest(
            user_id=sync.user_id,
            device_id=sync.device_id,
            since=0 if sync.full else start.events,
            upto=sync.events_upto,
            full=sync.full,
            filter=sync.filter,
            timeline_limit=min(limit, self._max_timeline_limit),
            changed_rooms=sync.changed_rooms,
            # a token not remembered: the device may hold nothing
            held_members=held or (),
        )


def _skips_redundant_members(sync_filter: Filter) -> bool:
    """spec: a lazy-loading client is not sent members it already has, unless it asks
    for them (include_redundant_members); nor when event_fields may have kept only part
    of what it was sent."""
    state = sync_filter.room.state
    return (
        state.lazy_load_members
        and not state.include_redundant_members
        and sync_filter.event_fields is None
    )


def _member_event_ids(body: JsonDict) -> list[str]:
    """The membership events a response carries, in its rooms' state and timelines."""
    found: list[str] = []
    rooms = body.get("rooms", {})
    for section in ("join", "leave"):
        for room in rooms.get(section, {}).values():
            for part in ("state", "timeline"):
                for event in room.get(part, {}).get("events", []):
                    if event.get("type") == "m.room.member" and "event_id" in event:
                        found.append(event["event_id"])
    return found


def _active_rooms(memberships: UserMemberships) -> list[str]:
    return [r for r, m in memberships.now.items() if m.membership in ACTIVE]
