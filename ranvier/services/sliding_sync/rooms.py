"""The `rooms` of a sliding sync response (MSC4186): for each room sent, its newest events,
the state its `required_state` asks for, and what a room list shows of it.

Built from /sync's pieces: timelines come from services/sync/timeline.TimelineLoader (the
same windows, history visibility and `prev_batch` that /messages accepts), state from its
StateLoader, member counts and heroes from storage/sync.get_member_summaries, unread
counts from the push actions (UnreadCounts), invite and knock state from the same stripped
state /sync serves. A room the connection was sent before gets only what changed since
(`since`), a room it was never sent everything (`initial`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.protocol.events import Event
from ranvier.protocol.filters import RoomEventFilter
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.sliding_sync.request import RoomParams
from ranvier.services.sliding_sync.required_state import select_state
from ranvier.services.sliding_sync.room_list import ListedRoom
from ranvier.services.sync.sources import UnreadCounts
from ranvier.services.sync.state import StateLoader
from ranvier.services.sync.summary import MAX_HEROES
from ranvier.services.sync.timeline import Timeline, TimelineLoader, TimelineRange
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateMap
from ranvier.streams.tokens import StreamToken

JsonDict = dict[str, Any]
Bundler = Callable[[list[str], str], Awaitable[Mapping[str, Mapping[str, Any]]]]

MEMBER = "m.room.member"
# what a room list shows of a room, sent when it changes
NAME = ("m.room.name", "")
AVATAR = ("m.room.avatar", "")
CANONICAL_ALIAS = ("m.room.canonical_alias", "")
_ALL_EVENTS = RoomEventFilter()


@dataclass(frozen=True)
class RoomToSend:
    room: ListedRoom
    params: RoomParams
    # the room-events position the connection has this room's news up to; None: never sent
    since: int | None
    is_dm: bool
    # sent again with a longer timeline than before (`unstable_expanded_timeline`)
    expanded: bool = False
    # asked for with required_state beyond what the connection was sent with: these are
    # the pairs it was sent with (None: nothing new asked)
    held_state: tuple[tuple[str, str], ...] | None = None


class SlidingSyncRooms:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        timelines: TimelineLoader,
        states: StateLoader,
        serializer: ClientEventSerializer,
        unread: UnreadCounts | None = None,
        bundler: Bundler | None = None,
    ) -> None:
        self._db = db
        self._loader = loader
        self._timelines = timelines
        self._states = states
        self._serializer = serializer
        self._unread = unread
        self._bundler = bundler

    async def changed(
        self, rooms: Sequence[RoomToSend], upto: int, changed: Collection[str] | None
    ) -> list[RoomToSend]:
        """The rooms to put in the response: those never sent, and those with events
        after what the connection has (`changed`: the rooms with events after the
        request's position, when known, saves looking at the others)."""
        kept: list[RoomToSend] = []
        to_check: dict[str, TimelineRange] = {}
        for one in rooms:
            if one.since is None or one.expanded or one.held_state is not None:
                kept.append(one)
            elif one.room.membership in ("invite", "knock"):
                # the user sees nothing of the room but their own membership
                if one.room.membership_stream > one.since:
                    kept.append(one)
            elif one.since < upto and (changed is None or one.room.room_id in changed):
                to_check[one.room.room_id] = TimelineRange(one.since, self._end(one, upto))
        if to_check:
            # rooms sharing a range are looked at in one query
            found = await self._latest(to_check)
            kept.extend(one for one in rooms if one.room.room_id in found)
        return kept

    async def _latest(self, room_to_range: Mapping[str, TimelineRange]) -> set[str]:
        range_to_rooms: dict[TimelineRange, list[str]] = {}
        for room_id, span in room_to_range.items():
            range_to_rooms.setdefault(span, []).append(room_id)
        found: set[str] = set()
        for span, room_ids in range_to_rooms.items():
            rows = await sync_store.get_recent_events(self._db, room_ids, span.after, span.upto, 1)
            found.update(rows)
        return found

    @staticmethod
    def _end(one: RoomToSend, upto: int) -> int:
        """Where the user stops seeing a room: its end for a member, their leaving else."""
        if one.room.membership in ("leave", "ban"):
            return min(upto, one.room.membership_stream)
        return upto

    async def build(
        self,
        user_id: str,
        device_id: str | None,
        rooms: Sequence[RoomToSend],
        upto: int,
        live_after: int | None,
    ) -> dict[str, JsonDict]:
        """room_id -> its body. `live_after`: the position of the request's `pos` (events
        after it are `num_live`), None on a connection's first request."""
        bodies: dict[str, JsonDict] = {}
        members = [one for one in rooms if one.room.membership not in ("invite", "knock")]
        for one in rooms:
            if one.room.membership in ("invite", "knock"):
                bodies[one.room.room_id] = await self._stripped(one)
        if members:
            bodies.update(await self._member_rooms(user_id, device_id, members, upto, live_after))
        return bodies

    async def _stripped(self, one: RoomToSend) -> JsonDict:
        state = await self._states.stripped_state(one.room.membership_event_id)
        # as Synapse: a knock's stripped state too goes in `invite_state` (the MSC names
        # no other field)
        body: JsonDict = {"invite_state": state, "bump_stamp": one.room.bump_stamp}
        _flags(body, one)
        for entry in state:
            if entry.get("type") == "m.room.name" and isinstance(
                entry.get("content", {}).get("name"), str
            ):
                body["name"] = entry["content"]["name"]
            elif entry.get("type") == "m.room.avatar" and isinstance(
                entry.get("content", {}).get("url"), str
            ):
                body["avatar"] = entry["content"]["url"]
        return body

    async def _member_rooms(
        self,
        user_id: str,
        device_id: str | None,
        rooms: Sequence[RoomToSend],
        upto: int,
        live_after: int | None,
    ) -> dict[str, JsonDict]:
        limit_to_ranges: dict[int, dict[str, TimelineRange]] = {}
        for one in rooms:
            # an expanded timeline is the newest events, not only those since
            start = 0 if one.expanded else one.since or 0
            span = TimelineRange(start, self._end(one, upto))
            # timeline_limit 0 still loads one event: whether the timeline is limited
            limit = max(one.params.timeline_limit, 1)
            limit_to_ranges.setdefault(limit, {})[one.room.room_id] = span
        timelines: dict[str, Timeline] = {}
        for limit, ranges in limit_to_ranges.items():
            timelines.update(await self._timelines.load(user_id, ranges, _ALL_EVENTS, limit))
        room_ids = [one.room.room_id for one in rooms]
        # the state each room is at for this response, and what the connection had: a
        # timeline's newest row is its room's last event up to here
        ends = {room_id: t.rows[-1].event_id for room_id, t in timelines.items() if t.rows}
        if unknown := [room_id for room_id in room_ids if room_id not in ends]:
            ends.update(await sync_store.get_last_events_at(self._db, unknown, upto))
        for one in rooms:
            if one.room.membership in ("leave", "ban"):
                ends[one.room.room_id] = one.room.membership_event_id
        since_to_rooms: dict[int, list[str]] = {}
        befores: dict[str, str] = {}
        for one in rooms:
            if one.since is None:
                continue
            timeline = timelines.get(one.room.room_id)
            if timeline is not None and not timeline.limited and not one.expanded:
                # a whole timeline since `since` starts right after the event the
                # connection had the room at, which the loader found (none: the room began
                # after it)
                if timeline.before_event_id is not None:
                    befores[one.room.room_id] = timeline.before_event_id
                continue
            since_to_rooms.setdefault(one.since, []).append(one.room.room_id)
        for since, ids in since_to_rooms.items():
            befores.update(await sync_store.get_last_events_at(self._db, ids, since))
        states = await self._states.state_after([*ends.values(), *befores.values()])
        naming = await self._loader.get_events(
            event_id
            for room_id in room_ids
            for key in (NAME, AVATAR, CANONICAL_ALIAS)
            if (event_id := states.get(ends.get(room_id, ""), {}).get(key)) is not None
        )
        unnamed = {
            room_id
            for room_id in room_ids
            if not _named(naming, states.get(ends.get(room_id, ""), {}))
        }
        summaries = await sync_store.get_member_summaries(
            self._db, room_ids, user_id, MAX_HEROES, hero_rooms=unnamed
        )
        unread = (
            await self._unread.unread_counts(user_id, room_ids) if self._unread is not None else {}
        )
        room_to_state_ids: dict[str, dict[tuple[str, str], str]] = {}
        room_to_now: dict[str, StateMap] = {}
        room_to_had: dict[str, StateMap] = {}
        for one in rooms:
            room_id = one.room.room_id
            timeline = timelines.get(room_id)
            shown = timeline.events if timeline is not None else []
            if one.params.timeline_limit == 0:
                shown = []
            now = states.get(ends.get(room_id, ""), {})
            had = states.get(befores.get(room_id, ""), {}) if one.since is not None else {}
            room_to_now[room_id] = now
            room_to_had[room_id] = had
            senders = [event.sender for event in shown]
            wanted = select_state(one.params.required_state, now, user_id, senders)
            if one.since is not None:
                # only what changed since; memberships asked for with $LAZY are sent again
                # for the senders shown, as the connection does not record which it holds
                held = one.held_state if one.held_state is not None else one.params.required_state
                previous = select_state(held, had, user_id, lazy=False)
                wanted = {
                    key: event_id
                    for key, event_id in wanted.items()
                    if previous.get(key) != event_id
                }
            room_to_state_ids[room_id] = wanted
        state_events = await self._loader.get_events(
            event_id for wanted in room_to_state_ids.values() for event_id in wanted.values()
        )
        shown_events = [
            event
            for one in rooms
            if one.params.timeline_limit > 0
            and (timeline := timelines.get(one.room.room_id)) is not None
            for event in timeline.events
        ]
        served_timeline = await self._serve(user_id, device_id, shown_events, bundle=True)
        all_state = [
            state_events[event_id]
            for wanted in room_to_state_ids.values()
            for event_id in wanted.values()
            if event_id in state_events
        ]
        served_state = await self._serve(user_id, device_id, all_state, bundle=False)
        hero_ids = {hero for summary in summaries.values() for hero in summary.heroes}
        heroes = await self._hero_profiles(room_to_now, hero_ids)
        bodies: dict[str, JsonDict] = {}
        for one in rooms:
            room_id = one.room.room_id
            timeline = timelines.get(room_id)
            events = served_timeline.get(room_id, [])
            now, had = room_to_now[room_id], room_to_had[room_id]
            body: JsonDict = {
                "limited": timeline.limited if timeline is not None else False,
                "prev_batch": (
                    timeline.prev_batch
                    if timeline is not None
                    and timeline.prev_batch is not None
                    and one.params.timeline_limit > 0
                    # no events sent: paging back starts from the end
                    else str(StreamToken(self._end(one, upto)))
                ),
                "bump_stamp": one.room.bump_stamp,
                "joined_count": summaries[room_id].joined,
                "invited_count": summaries[room_id].invited,
                "notification_count": int(unread.get(room_id, {}).get("notification_count", 0)),
                "highlight_count": int(unread.get(room_id, {}).get("highlight_count", 0)),
                "num_live": (
                    _live(timeline, live_after) if events and live_after is not None else 0
                ),
            }
            _flags(body, one)
            if one.expanded:
                body["unstable_expanded_timeline"] = True
            # as Synapse: empty parts are left out
            if events:
                body["timeline"] = events
            if served_state.get(room_id):
                body["required_state"] = served_state[room_id]
            if one.params.timeline_limit == 0:
                body["limited"] = timeline is not None
            name = _content_of(naming, now.get(NAME), "name")
            if name is not None and (one.since is None or now.get(NAME) != had.get(NAME)):
                body["name"] = name
            avatar = _content_of(naming, now.get(AVATAR), "url")
            if avatar is not None and (one.since is None or now.get(AVATAR) != had.get(AVATAR)):
                body["avatar"] = avatar
            if room_id in unnamed and summaries[room_id].heroes:
                body["heroes"] = [
                    heroes.get((room_id, hero), {"user_id": hero})
                    for hero in summaries[room_id].heroes[:MAX_HEROES]
                ]
            bodies[room_id] = body
        return bodies

    async def _hero_profiles(
        self, room_to_now: Mapping[str, StateMap], hero_ids: Collection[str]
    ) -> dict[tuple[str, str], JsonDict]:
        """(room_id, user_id) -> the hero as a room list shows them: their membership's
        display name and avatar in that room."""
        wanted = {
            (room_id, user_id): event_id
            for room_id, now in room_to_now.items()
            for user_id in hero_ids
            if (event_id := now.get((MEMBER, user_id))) is not None
        }
        loaded = await self._loader.get_events(wanted.values())
        found: dict[tuple[str, str], JsonDict] = {}
        for (room_id, user_id), event_id in wanted.items():
            hero: JsonDict = {"user_id": user_id}
            event = loaded.get(event_id)
            if event is not None:
                if isinstance(event.content.get("displayname"), str):
                    hero["displayname"] = event.content["displayname"]
                if isinstance(event.content.get("avatar_url"), str):
                    hero["avatar_url"] = event.content["avatar_url"]
            found[(room_id, user_id)] = hero
        return found

    async def _serve(
        self, user_id: str, device_id: str | None, events: list[Event], *, bundle: bool
    ) -> dict[str, list[JsonDict]]:
        """room_id -> its events in the client's format, in the order given."""
        bundled = None
        if bundle and self._bundler is not None and events:
            bundled = await self._bundler([e.event_id for e in events], user_id)
        served = await self._serializer.serialize_events(
            events,
            requester_user_id=user_id,
            requester_device_id=device_id,
            bundled_aggregations=bundled,
            include_previous=bundle,
        )
        room_to_served: dict[str, list[JsonDict]] = {}
        for event, body in zip(events, served, strict=True):
            room_to_served.setdefault(event.room_id, []).append(body)
        return room_to_served


def _content_of(events: Mapping[str, Event], event_id: str | None, key: str) -> str | None:
    event = events.get(event_id) if event_id is not None else None
    value = event.content.get(key) if event is not None else None
    return value if isinstance(value, str) and value else None


def _named(naming: Mapping[str, Event], state: StateMap) -> bool:
    """Whether a room list shows the room by its name or alias (else by its heroes)."""
    return (
        _content_of(naming, state.get(NAME), "name") is not None
        or _content_of(naming, state.get(CANONICAL_ALIAS), "alias") is not None
    )


def _live(timeline: Timeline | None, after: int) -> int:
    """How many of the timeline's events came after the request's position."""
    if timeline is None:
        return 0
    shown = {event.event_id for event in timeline.events}
    return sum(1 for row in timeline.rows if row.event_id in shown and row.stream > after)


def _flags(body: JsonDict, one: RoomToSend) -> None:
    """`initial` and `is_dm`, present only when true (as Synapse, to save bandwidth)."""
    if one.since is None:
        body["initial"] = True
    if one.is_dm:
        body["is_dm"] = True
