"""The `rooms` part of /sync: which rooms go in join, invite, knock and leave, and each
joined or left room's timeline, state and summary.

Memberships are read as of the two tokens' room-event positions. A room the user joined
since the token (or every room on an initial or full_state sync) gets its full state and
its newest events; any other joined room gets what happened since the token.
Forgotten rooms never appear.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from ranvier.protocol.events import Event
from ranvier.protocol.filters import Filter
from ranvier.services.account_data import ignored_users
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.sync.event_fields import only_fields
from ranvier.services.sync.sources import UnreadCounts
from ranvier.services.sync.state import StateLoader, calculate_state
from ranvier.services.sync.summary import (
    MAX_HEROES,
    NAMING_STATE,
    has_naming_content,
    room_summary,
)
from ranvier.services.sync.timeline import Timeline, TimelineLoader, TimelineRange
from ranvier.storage import state as state_store
from ranvier.storage import sync as sync_store
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database
from ranvier.storage.state import StateMap
from ranvier.storage.sync import MembershipAt, TimelineRow, UserMemberships
from ranvier.streams.tokens import StreamToken

JsonDict = dict[str, Any]
Bundler = Callable[[list[str], str], Awaitable[Mapping[str, Mapping[str, Any]]]]

DEPARTED = ("leave", "ban")


@dataclass
class RoomExtras:
    """What other streams contribute to the rooms, by room ID."""

    ephemeral: dict[str, list[JsonDict]] = field(default_factory=dict)
    account_data: dict[str, list[JsonDict]] = field(default_factory=dict)


@dataclass(frozen=True)
class RoomsRequest:
    user_id: str
    device_id: str | None
    # room-event positions: `since` 0 for an initial sync
    since: int
    upto: int
    full: bool
    filter: Filter
    timeline_limit: int
    # rooms with events in (since, upto]; None when unknown (then every room is looked at)
    changed_rooms: set[str] | None = None
    # membership event IDs a lazy-loading device already holds, not sent again for the
    # senders and heroes of a room it had (spec: redundant members)
    held_members: Container[str] = ()


@dataclass
class _Plan:
    join_newly: list[str] = field(default_factory=list)
    join_since: list[str] = field(default_factory=list)
    invite: list[MembershipAt] = field(default_factory=list)
    knock: list[MembershipAt] = field(default_factory=list)
    # room_id -> (its range, whether its full state is sent)
    leave: dict[str, tuple[TimelineRange, bool]] = field(default_factory=dict)


def plan_rooms(memberships: UserMemberships, request: RoomsRequest) -> _Plan:
    """Sort the user's rooms into sections; pure."""
    plan = _Plan()
    room_filter = request.filter.room
    for room_id, now in memberships.now.items():
        if now.forgotten or not room_filter.allows_room(room_id):
            continue
        before = memberships.before.get(room_id)
        changed = before is None or before.event_id != now.event_id
        if now.membership == "join":
            if request.full or before is None or before.membership != "join":
                plan.join_newly.append(room_id)
            else:
                plan.join_since.append(room_id)
        elif now.membership == "invite" and (request.full or changed):
            plan.invite.append(now)
        elif now.membership == "knock" and (request.full or changed):
            plan.knock.append(now)
        elif now.membership in DEPARTED:
            if request.full:
                # spec: include_leave asks for the rooms left before too
                if room_filter.include_leave:
                    plan.leave[room_id] = (TimelineRange(0, now.stream), True)
            elif changed:
                # a member who left sees what happened up to their leaving (with the whole
                # state if they joined after the token); someone who only declined an
                # invite or withdrew a knock, just that event
                had_joined = before is not None and before.membership == "join"
                joined_between = room_id in memberships.joined_since
                after = request.since if had_joined or joined_between else now.stream - 1
                full = joined_between and not had_joined
                plan.leave[room_id] = (TimelineRange(after, now.stream), full)
    return plan


def unread_sections(counts: JsonDict, per_thread: bool) -> JsonDict:
    """unread_notifications, and unread_thread_notifications when the client asked for
    them; then (spec: "Receiving notifications") the room's counts are the main
    timeline's only, so the threads' are taken out."""
    notifications = int(counts.get("notification_count", 0))
    highlights = int(counts.get("highlight_count", 0))
    if not per_thread:
        return {
            "unread_notifications": {
                "notification_count": notifications,
                "highlight_count": highlights,
            }
        }
    threads: dict[str, JsonDict] = counts.get("threads", {})
    for thread in threads.values():
        notifications -= int(thread.get("notification_count", 0))
        highlights -= int(thread.get("highlight_count", 0))
    return {
        "unread_notifications": {
            "notification_count": max(0, notifications),
            "highlight_count": max(0, highlights),
        },
        "unread_thread_notifications": threads,
    }


class RoomsBuilder:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        timelines: TimelineLoader,
        states: StateLoader,
        serializer: ClientEventSerializer,
        bundler: Bundler | None = None,
        unread: UnreadCounts | None = None,
    ) -> None:
        self._db = db
        # read only, for the user's ignore list
        self._account_data = AccountDataStore(db)
        self._loader = loader
        self._timelines = timelines
        self._states = states
        self._serializer = serializer
        self._bundler = bundler
        # without it every joined room shows zero counts
        self._unread = unread

    async def build(
        self, request: RoomsRequest, memberships: UserMemberships, extras: RoomExtras
    ) -> JsonDict:
        plan = plan_rooms(memberships, request)
        timeline_filter = request.filter.room.timeline
        ranges: dict[str, TimelineRange] = {}
        # on an incremental sync, a room joined since the token is one the client has no
        # history of
        newly = request.since > 0 and not request.full
        for room_id in plan.join_newly:
            ranges[room_id] = TimelineRange(0, request.upto, newly_joined=newly)
        for room_id in plan.join_since:
            if request.changed_rooms is None or room_id in request.changed_rooms:
                ranges[room_id] = TimelineRange(request.since, request.upto)
        for room_id, (span, _) in plan.leave.items():
            ranges[room_id] = span
        timelines = await self._timelines.load(
            request.user_id, ranges, timeline_filter, request.timeline_limit
        )
        await self._add_out_of_band_leaves(plan, memberships, timelines)
        full_rooms = {*plan.join_newly, *(r for r, (_, full) in plan.leave.items() if full)}
        previous = await self._previous_states(request, timelines, full_rooms)

        joined_ids = [*plan.join_newly, *plan.join_since]
        shown_joined = [
            room_id
            for room_id in joined_ids
            if room_id in plan.join_newly
            or room_id in timelines
            or room_id in extras.ephemeral
            or room_id in extras.account_data
        ]
        room_to_full = {room_id: room_id in plan.join_newly for room_id in shown_joined}
        room_to_full.update((room_id, full) for room_id, (_, full) in plan.leave.items())
        summarised = set(plan.join_newly)
        for room_id in shown_joined:
            timeline = timelines.get(room_id)
            if timeline is not None and await self._members_changed(timeline):
                summarised.add(room_id)
        summaries = await self._summaries([r for r in shown_joined if r in summarised], request)
        # every room's timeline and state, loaded and served together: a few queries per
        # sync rather than a few per room
        bodies = await self._rooms(request, room_to_full, timelines, previous, summaries)
        # as Synapse: a room the client already had is left out when the filters and
        # history visibility let nothing of its news through (an ignored user's message,
        # a change of a state type nobody asked for); its unread counts alone do not count
        shown_joined = [
            room_id
            for room_id in shown_joined
            if room_id in plan.join_newly
            or bodies[room_id]["timeline"]["events"]
            or bodies[room_id]["state"]["events"]
            or extras.ephemeral.get(room_id)
            or extras.account_data.get(room_id)
        ]
        # counts are read only for the rooms the response shows
        unread = (
            await self._unread.unread_counts(request.user_id, shown_joined)
            if self._unread is not None and shown_joined
            else {}
        )

        join: JsonDict = {}
        for room_id in shown_joined:
            room = bodies[room_id]
            room["ephemeral"] = {"events": extras.ephemeral.get(room_id, [])}
            room["account_data"] = {"events": extras.account_data.get(room_id, [])}
            room["summary"] = summaries.get(room_id, {})
            room.update(
                unread_sections(
                    unread.get(room_id, {}), timeline_filter.unread_thread_notifications
                )
            )
            join[room_id] = room

        leave: JsonDict = {}
        for room_id in plan.leave:
            room = bodies[room_id]
            room["account_data"] = {"events": extras.account_data.get(room_id, [])}
            leave[room_id] = room
        return await self._sections(request.user_id, plan, join, leave)

    async def _add_out_of_band_leaves(
        self, plan: _Plan, memberships: UserMemberships, timelines: dict[str, Timeline]
    ) -> None:
        """A leave out of band (an invite rejected, a knock withdrawn in a room this server
        is not in: services/federation/out_of_band.py) is in no timeline; as Synapse, the
        leave alone is the room's timeline, so the client sees why the room went."""
        missing = [room_id for room_id in plan.leave if room_id not in timelines]
        if not missing:
            return
        event_ids = [memberships.now[room_id].event_id for room_id in missing]
        with_state = await self._loader.state_groups_of(event_ids)
        loaded = await self._loader.get_events(e for e in event_ids if e not in with_state)
        for room_id in missing:
            at = memberships.now[room_id]
            event = loaded.get(at.event_id)
            if event is None:
                continue
            row = TimelineRow(event.event_id, event.depth, at.stream)
            timelines[room_id] = Timeline(room_id, [event], False, [row], None, None)

    async def _summaries(self, room_ids: list[str], request: RoomsRequest) -> dict[str, JsonDict]:
        """room_id -> its summary. spec: m.heroes only for a room without a name or a
        canonical alias (the client names it from them); the counts always."""
        if not room_ids:
            return {}
        members = await sync_store.get_member_summaries(
            self._db, room_ids, request.user_id, MAX_HEROES
        )
        naming = await state_store.get_current_state_ids_for_rooms(self._db, room_ids, NAMING_STATE)
        loaded = await self._loader.get_events(
            event_id for found in naming.values() for event_id in found.values()
        )
        summaries: dict[str, JsonDict] = {}
        for room_id in room_ids:
            named = any(
                (event := loaded.get(event_id)) is not None and has_naming_content(event)
                for event_id in naming.get(room_id, {}).values()
            )
            summaries[room_id] = room_summary(members[room_id], with_heroes=not named)
        return summaries

    async def _sections(
        self, user_id: str, plan: _Plan, join: JsonDict, leave: JsonDict
    ) -> JsonDict:
        """join, invite, knock and leave, each only if it has a room."""
        sections: JsonDict = {}
        if join:
            sections["join"] = join
        invites = plan.invite
        if invites:
            # as Synapse (spec: "Ignoring Users"): invites from ignored users are not shown
            ignored = await ignored_users(self._account_data, user_id)
            if ignored:
                loaded = await self._loader.get_events(m.event_id for m in invites)
                invites = [
                    m
                    for m in invites
                    if (event := loaded.get(m.event_id)) is None or event.sender not in ignored
                ]
        invite = {
            m.room_id: {"invite_state": {"events": await self._states.stripped_state(m.event_id)}}
            for m in invites
        }
        if invite:
            sections["invite"] = invite
        knock = {
            m.room_id: {"knock_state": {"events": await self._states.stripped_state(m.event_id)}}
            for m in plan.knock
        }
        if knock:
            sections["knock"] = knock
        if leave:
            sections["leave"] = leave
        return sections

    async def _previous_states(
        self, request: RoomsRequest, timelines: dict[str, Timeline], full_rooms: set[str]
    ) -> dict[str, StateMap]:
        """The state each incrementally synced room had at the token: what the client
        has. A window that was not limited starts right after the token, so the state
        before it is that state already; limited ones need a lookup."""
        limited = [
            room_id
            for room_id, timeline in timelines.items()
            if room_id not in full_rooms and timeline.limited
        ]
        at_token = await sync_store.get_last_events_at(self._db, limited, request.since)
        states = await self._states.state_after(at_token.values())
        return {room_id: states.get(event_id, {}) for room_id, event_id in at_token.items()}

    async def _rooms(
        self,
        request: RoomsRequest,
        room_to_full: dict[str, bool],
        timelines: dict[str, Timeline],
        previous: dict[str, StateMap],
        summaries: dict[str, JsonDict],
    ) -> dict[str, JsonDict]:
        """room_id -> {"timeline", "state"} for each room; `full`: send the whole state."""
        room_filter = request.filter.room
        lazy = room_filter.state.lazy_load_members
        wanted = {
            event_id
            for room_id in room_to_full
            if (timeline := timelines.get(room_id)) is not None
            for event_id in (timeline.before_event_id, timeline.last_event_id)
            if event_id
        }
        states = await self._states.state_after(wanted)
        room_to_state: dict[str, StateMap] = {}
        for room_id, full in room_to_full.items():
            timeline = timelines.get(room_id)
            if timeline is None:
                continue
            start = states.get(timeline.before_event_id or "", {})
            end = states.get(timeline.last_event_id or "", {})
            # not limited (no lookup made): the window starts right after the token
            had = {} if full else previous.get(room_id, start)
            # spec: a lazy-loading client still gets its own membership with a full
            # state, and the heroes' whenever the summary names them
            also_members: list[str] = list(summaries.get(room_id, {}).get("m.heroes", []))
            if full:
                also_members.append(request.user_id)
            room_to_state[room_id] = calculate_state(
                timeline_start=start,
                timeline_end=end,
                previous=had,
                timeline=timeline.events,
                lazy_load_members=lazy,
                full=full,
                also_members=also_members,
                # a room whose whole state is sent starts afresh
                held=() if full else request.held_members,
            )
        state_events = await self._states.events(
            [event_id for state in room_to_state.values() for event_id in state.values()],
            room_filter.state,
        )
        timeline_events = [
            e for t in timelines.values() if t.room_id in room_to_full for e in t.events
        ]
        served_timeline = await self._serve(request, timeline_events, bundle=True)
        served_state = await self._serve(request, state_events, bundle=False)
        bodies: dict[str, JsonDict] = {}
        for room_id in room_to_full:
            timeline = timelines.get(room_id)
            body: JsonDict = {
                "timeline": {
                    "events": served_timeline.get(room_id, []),
                    "limited": timeline.limited if timeline is not None else False,
                },
                "state": {"events": served_state.get(room_id, [])},
            }
            if timeline is not None and timeline.prev_batch is not None:
                body["timeline"]["prev_batch"] = timeline.prev_batch
            else:
                # nothing new in the room: paging back starts from where the sync stands
                body["timeline"]["prev_batch"] = str(StreamToken(request.upto))
            bodies[room_id] = body
        return bodies

    async def _serve(
        self, request: RoomsRequest, events: list[Event], *, bundle: bool
    ) -> dict[str, list[JsonDict]]:
        """room_id -> its events served, in the order given."""
        bundled = None
        if bundle and self._bundler is not None and events:
            bundled = await self._bundler([e.event_id for e in events], request.user_id)
        served = await self._serializer.serialize_events(
            events,
            requester_user_id=request.user_id,
            requester_device_id=request.device_id,
            bundled_aggregations=bundled,
            # prev_content is for showing a change; the state section shows no changes
            # and finding what each state event replaced costs a state load per event
            include_previous=bundle,
        )
        fields = request.filter.event_fields
        federation = request.filter.event_format == "federation"
        room_to_served: dict[str, list[JsonDict]] = {}
        for event, body in zip(events, served, strict=True):
            if federation:
                # spec (event_format): the event as the federation shares it, the PDU
                # with its hashes, signatures and DAG keys; as Synapse, with what the
                # client form adds (event_id, unsigned) and a redacted event's content
                body = {**event.pdu, **body}
            else:
                # spec: sync's events are ClientEventWithoutRoomID; the room is the key
                body.pop("room_id", None)
            if fields is not None:
                body = only_fields(body, fields)
            room_to_served.setdefault(event.room_id, []).append(body)
        return room_to_served

    async def _members_changed(self, timeline: Timeline) -> bool:
        loaded = await self._loader.get_events(row.event_id for row in timeline.rows)
        return any(event.type == "m.room.member" for event in loaded.values())
