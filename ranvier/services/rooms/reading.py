"""Reading rooms: single events, state, members, /messages, /context and
timestamp_to_event, each through history visibility (spec: client-server-api "Getting
events for a room", "Room History Visibility", event_context.yaml,
message_pagination.yaml, room_event_by_timestamp.yaml).

Who reads decides which state they see: members the current state; former members the
state as of the membership event that ended their stay (as Synapse does), and nothing of
the timeline after it; anyone the current state of a world_readable room.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.filters import RoomEventFilter
from ranvier.requester import UserRequester
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.visibility import HistoryVisibility, RoomAccess
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateMap
from ranvier.streams.tokens import RoomPosition, StreamToken

# /messages and /context: Synapse's default page; the cap keeps responses bounded
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# how many events one database round trip scans, and how many trips one page may take
# before it answers with what it has (filters or visibility may hide long stretches)
SCAN_BATCH = 100
MAX_SCAN_BATCHES = 20
# a point before every event of a room (depths start at 1)
BEFORE_EVERYTHING = RoomPosition(0, 0)

Bundler = Callable[[list[str], str], Awaitable[Mapping[str, Mapping[str, Any]]]]
# (room_id, ts, forwards) -> (event_id, origin_server_ts) another server in the room found,
# checked and kept here (services/federation/remote_history.RemoteHistory.closest_event)
RemoteTimestamps = Callable[[str, int, bool], Awaitable[tuple[str, int] | None]]
# room_id -> whether older history was pulled from other servers and stored
# (services/federation/transactions.TransactionService.backfill)
Backfill = Callable[[str], Awaitable[bool]]


def not_found(what: str = "Event not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", what)


@dataclass
class Page:
    events: list[Event]
    start: RoomPosition
    # None: nothing further in this direction (or nothing the reader may see)
    end: RoomPosition | None
    # where the walk stopped, whether or not anything lies beyond
    cursor: RoomPosition | None


@dataclass
class RoomReadingService:
    db: Database
    loader: EventLoader
    visibility: HistoryVisibility
    serializer: ClientEventSerializer
    # the relations service's bundled aggregations, once it is wired in
    bundler: Bundler | None = None
    # other servers in the room, asked when the closest local event is next to a gap
    remote_timestamps: RemoteTimestamps | None = None
    # other servers in the room, asked for older history when a backwards page comes up
    # short (connected once inbound federation is built)
    backfill: Backfill | None = None

    # -- serving ----------------------------------------------------------------------------

    async def _serve(
        self, requester: UserRequester, events: Sequence[Event]
    ) -> list[dict[str, Any]]:
        bundled = None
        if self.bundler is not None and events:
            bundled = await self.bundler([e.event_id for e in events], requester.user_id)
        return await self.serializer.serialize_events(
            events,
            requester_user_id=requester.user_id,
            requester_device_id=requester.device_id,
            bundled_aggregations=bundled,
        )

    async def _access(self, requester: UserRequester, room_id: str) -> RoomAccess:
        return await self.visibility.check_user_can_see_room(requester.user_id, room_id)

    async def _state_for(self, access: RoomAccess) -> StateMap:
        if access.departed and access.membership_event_id is not None:
            groups = await state_store.get_event_state_groups(self.db, [access.membership_event_id])
            group = groups.get(access.membership_event_id)
            if group is not None:
                return await self.loader.get_state_group(group)
        return await state_store.get_current_state_ids(self.db, access.room_id)

    async def _cap(self, access: RoomAccess) -> RoomPosition | None:
        """The last point of the timeline this reader may reach."""
        if not access.departed or access.membership_event_id is None:
            return None
        # a purge of the history before it leaves the departure where it was: still the cap
        found = await event_store.get_timeline_position(
            self.db, access.membership_event_id, include_outliers=True
        )
        return None if found is None else RoomPosition(found[1].depth, found[1].stream)

    # -- single events and state -----------------------------------------------------------

    async def get_event(
        self, requester: UserRequester, room_id: str, event_id: str
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/event/{eventId}"""
        try:
            await self._access(requester, room_id)
        except MatrixError as exc:
            # spec (and Synapse): 404 when the requester may not see the event, so a
            # non-member learns nothing, not even that the room exists
            if exc.status == 403:
                raise not_found() from None
            raise
        event = await self.loader.get_event(event_id)
        if event is None or event.room_id != room_id or event.rejected_reason is not None:
            raise not_found()
        if not await self.visibility.filter_events_for_client(requester.user_id, [event]):
            raise not_found()
        (served,) = await self._serve(requester, [event])
        return served

    async def get_state(self, requester: UserRequester, room_id: str) -> list[dict[str, Any]]:
        access = await self._access(requester, room_id)
        state = await self._state_for(access)
        loaded = await self.loader.get_events(state.values())
        events = [loaded[event_id] for event_id in state.values() if event_id in loaded]
        return await self.serializer.serialize_events(
            events, requester_user_id=requester.user_id, requester_device_id=requester.device_id
        )

    async def get_state_event(
        self, requester: UserRequester, room_id: str, event_type: str, state_key: str
    ) -> dict[str, Any]:
        """The client-format state event; 404 M_NOT_FOUND if the key has none."""
        access = await self._access(requester, room_id)
        state = await self._state_for(access)
        event_id = state.get((event_type, state_key))
        event = await self.loader.get_event(event_id) if event_id is not None else None
        if event is None:
            raise not_found(f"No {event_type} state with key {state_key!r} in this room")
        return await self.serializer.serialize_event(
            event, requester_user_id=requester.user_id, requester_device_id=requester.device_id
        )

    async def get_members(
        self,
        requester: UserRequester,
        room_id: str,
        *,
        at: RoomPosition | StreamToken | None,
        membership: str | None,
        not_membership: str | None,
    ) -> list[dict[str, Any]]:
        access = await self._access(requester, room_id)
        state = await self._state_for(access)
        if at is not None:
            position = await self._place(room_id, at)
            cap = await self._cap(access)
            if cap is not None and position > cap:
                position = cap
            before = await event_store.paginate_room_events(
                self.db, room_id, backwards=True, start=_pair(position), stop=None, limit=1
            )
            if before:
                groups = await state_store.get_event_state_groups(self.db, [before[0].event_id])
                group = groups.get(before[0].event_id)
                if group is not None:
                    state = await self.loader.get_state_group(group)
        member_ids = [eid for (kind, _), eid in state.items() if kind == "m.room.member"]
        loaded = await self.loader.get_events(member_ids)
        members = []
        for event_id in member_ids:
            event = loaded.get(event_id)
            if event is None:
                continue
            if membership is not None and event.membership != membership:
                continue
            if not_membership is not None and event.membership == not_membership:
                continue
            members.append(event)
        return await self.serializer.serialize_events(
            members, requester_user_id=requester.user_id, requester_device_id=requester.device_id
        )

    async def get_joined_members(
        self, requester: UserRequester, room_id: str
    ) -> dict[str, dict[str, Any]]:
        access = await self.visibility.check_user_can_see_room(
            requester.user_id, room_id, allow_departed_users=False
        )
        state = await state_store.get_current_state_ids(self.db, access.room_id)
        member_ids = [eid for (kind, _), eid in state.items() if kind == "m.room.member"]
        loaded = await self.loader.get_events(member_ids)
        joined: dict[str, dict[str, Any]] = {}
        for event in loaded.values():
            if event.membership == "join" and event.state_key is not None:
                content = event.content
                joined[event.state_key] = {
                    "display_name": _str_or_none(content.get("displayname")),
                    "avatar_url": _str_or_none(content.get("avatar_url")),
                }
        return joined

    # -- the timeline ------------------------------------------------------------------------

    async def _place(self, room_id: str, token: RoomPosition | StreamToken) -> RoomPosition:
        if isinstance(token, RoomPosition):
            return token
        found = await event_store.latest_position_at_stream(self.db, room_id, token.stream)
        return BEFORE_EVERYTHING if found is None else RoomPosition(found.depth, found.stream)

    async def _page(
        self,
        user_id: str,
        room_id: str,
        *,
        backwards: bool,
        start: RoomPosition | None,
        stop: RoomPosition | None,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> Page:
        """Walk the timeline from `start`, keeping what the filter and history visibility
        let through, until `limit` events are kept or the walk ends."""
        kept: list[Event] = []
        cursor = start
        first_scanned: RoomPosition | None = None
        exhausted = False
        for _ in range(MAX_SCAN_BATCHES):
            if len(kept) >= limit:
                break
            batch = await event_store.paginate_room_events(
                self.db,
                room_id,
                backwards=backwards,
                start=_pair(cursor),
                stop=_pair(stop),
                limit=SCAN_BATCH,
            )
            if first_scanned is None and batch:
                top = batch[0]
                first_scanned = (
                    RoomPosition(top.depth, top.stream)
                    if backwards
                    else RoomPosition.before(top.depth, top.stream)
                )
            loaded = await self.loader.get_events(p.event_id for p in batch)
            candidates = [
                loaded[p.event_id]
                for p in batch
                if p.event_id in loaded and event_filter.matches(loaded[p.event_id].pdu)
            ]
            visible = {
                e.event_id
                for e in await self.visibility.filter_events_for_client(user_id, candidates)
            }
            for position in batch:
                if len(kept) >= limit:
                    break
                cursor = (
                    RoomPosition.before(position.depth, position.stream)
                    if backwards
                    else RoomPosition(position.depth, position.stream)
                )
                if position.event_id in visible:
                    kept.append(loaded[position.event_id])
            if len(batch) < SCAN_BATCH and len(kept) < limit:
                exhausted = True
                break
        begin = start or first_scanned or BEFORE_EVERYTHING
        return Page(kept, begin, None if exhausted else cursor, cursor)

    async def messages(
        self,
        requester: UserRequester,
        room_id: str,
        *,
        from_token: RoomPosition | StreamToken | None,
        to_token: RoomPosition | StreamToken | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> dict[str, Any]:
        access = await self._access(requester, room_id)
        start = await self._place(room_id, from_token) if from_token is not None else None
        stop = await self._place(room_id, to_token) if to_token is not None else None
        cap = await self._cap(access)
        if cap is not None:
            # a former member reads up to the event that ended their membership
            if backwards and (start is None or start > cap):
                start = cap
            if not backwards and (stop is None or stop > cap):
                stop = cap
        page = await self._page(
            requester.user_id,
            room_id,
            backwards=backwards,
            start=start,
            stop=stop,
            limit=min(limit, MAX_LIMIT),
            event_filter=event_filter,
        )
        # local history ran out: other servers may hold what lies before it
        if (
            backwards
            and len(page.events) < min(limit, MAX_LIMIT)
            and self.backfill is not None
            and await self.backfill(room_id)
        ):
            page = await self._page(
                requester.user_id,
                room_id,
                backwards=backwards,
                start=start,
                stop=stop,
                limit=min(limit, MAX_LIMIT),
                event_filter=event_filter,
            )
        body: dict[str, Any] = {
            "chunk": await self._serve(requester, page.events),
            "start": str(page.start) if from_token is None else str(from_token),
        }
        # As Synapse: `end` is left out only when this page is empty and nothing lies
        # beyond it; a page that reached the start (or end) of the room still carries
        # one, so a client continues from it and the next, empty page has none.
        end = page.end if page.end is not None or not page.events else page.cursor
        if end is not None:
            body["end"] = str(end)
        if event_filter.lazy_load_members:
            body["state"] = await self._member_state(requester, page.events)
        else:
            body["state"] = []
        return body

    async def context(
        self,
        requester: UserRequester,
        room_id: str,
        event_id: str,
        *,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> dict[str, Any]:
        access = await self._access(requester, room_id)
        event = await self.loader.get_event(event_id)
        found = await event_store.get_timeline_position(self.db, event_id)
        if event is None or found is None or found[0] != room_id:
            raise not_found()
        if not await self.visibility.filter_events_for_client(requester.user_id, [event]):
            raise not_found()
        position = found[1]
        limit = min(limit, MAX_LIMIT)
        before_limit = limit // 2
        cap = await self._cap(access)
        before = await self._page(
            requester.user_id,
            room_id,
            backwards=True,
            start=RoomPosition.before(position.depth, position.stream),
            stop=None,
            limit=before_limit,
            event_filter=event_filter,
        )
        after = await self._page(
            requester.user_id,
            room_id,
            backwards=False,
            start=RoomPosition(position.depth, position.stream),
            stop=cap,
            limit=limit - before_limit,
            event_filter=event_filter,
        )
        groups = await state_store.get_event_state_groups(self.db, [event_id])
        state = await self.loader.get_state_group(groups[event_id]) if event_id in groups else {}
        shown = [event, *before.events, *after.events]
        if event_filter.lazy_load_members:
            senders = {e.sender for e in shown}
            state = {k: v for k, v in state.items() if k[0] != "m.room.member" or k[1] in senders}
        loaded = await self.loader.get_events(state.values())
        state_events = [loaded[eid] for eid in state.values() if eid in loaded]
        served = await self._serve(requester, shown)
        return {
            "event": served[0],
            "events_before": served[1 : 1 + len(before.events)],
            "events_after": served[1 + len(before.events) :],
            "start": str(before.cursor or RoomPosition.before(position.depth, position.stream)),
            "end": str(after.cursor or RoomPosition(position.depth, position.stream)),
            "state": await self.serializer.serialize_events(
                state_events,
                requester_user_id=requester.user_id,
                requester_device_id=requester.device_id,
            ),
        }

    async def timestamp_to_event(
        self, requester: UserRequester, room_id: str, ts: int, *, forwards: bool
    ) -> dict[str, Any]:
        await self._access(requester, room_id)
        found = await event_store.event_closest_to_ts(self.db, room_id, ts, forwards=forwards)
        if self.remote_timestamps is not None and await self._next_to_gap(
            room_id, found, forwards=forwards
        ):
            # as Synapse: the remote answer when it is closer than what is known here
            remote = await self.remote_timestamps(room_id, ts, forwards)
            if remote is not None and (found is None or abs(remote[1] - ts) < abs(found[1] - ts)):
                found = remote
        if found is None:
            direction = "after" if forwards else "before"
            raise not_found(f"Unable to find event from {ts} in direction {direction}")
        return {"event_id": found[0], "origin_server_ts": found[1]}

    async def _next_to_gap(
        self, room_id: str, found: tuple[str, int] | None, *, forwards: bool
    ) -> bool:
        """Whether history this server lacks may hold a closer event: nothing found, or
        (forwards) the event found has prev events not held here, or (backwards) it is a
        forward extremity, after which other servers may have more."""
        if found is None:
            return True
        if forwards:
            event = await self.loader.get_event(found[0])
            if event is None:
                return True
            held = await event_store.get_timeline_event_ids(self.db, event.prev_event_ids)
            return any(prev_id not in held for prev_id in event.prev_event_ids)
        extremities = await event_store.get_forward_extremities(self.db, room_id)
        return any(event_id == found[0] for event_id, _ in extremities)

    async def _member_state(
        self, requester: UserRequester, events: Sequence[Event]
    ) -> list[dict[str, Any]]:
        """spec: lazy-loading room members - the member events of the chunk's senders, as
        of the events they sent."""
        if not events:
            return []
        groups = await state_store.get_event_state_groups(self.db, [e.event_id for e in events])
        member_ids: dict[str, str] = {}
        for event in events:
            if event.sender in member_ids or event.event_id not in groups:
                continue
            state = await self.loader.get_state_group(groups[event.event_id])
            member_id = state.get(("m.room.member", event.sender))
            if member_id is not None:
                member_ids[event.sender] = member_id
        loaded = await self.loader.get_events(member_ids.values())
        return await self.serializer.serialize_events(
            [loaded[eid] for eid in member_ids.values() if eid in loaded],
            requester_user_id=requester.user_id,
            requester_device_id=requester.device_id,
        )


def _pair(position: RoomPosition | None) -> tuple[int, int] | None:
    return None if position is None else (position.depth, position.stream)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
