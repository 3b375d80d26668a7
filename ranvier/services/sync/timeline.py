"""Timelines for /sync: the newest events of many rooms, loaded together, filtered and
checked against history visibility.

A timeline is a window of the room-events stream in (after, upto]. When more events lie
in that range than the filter's limit lets through, the timeline is `limited` and its
`prev_batch` points just before its first event, so /messages pages back without a gap.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ranvier.protocol.events import Event
from ranvier.protocol.filters import RoomEventFilter
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.visibility import HistoryVisibility
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateMap
from ranvier.storage.sync import TimelineRow
from ranvier.streams.tokens import RoomPosition

# when a filter hides events, windows are widened this many times before giving up and
# answering with fewer events (the client can page back with prev_batch); each widening
# reads twice as many events as the one before, starting from WIDENING_BATCH (or twice the
# limit), so a sparse filter such as `types: [m.room.message]` still fills its limit
MAX_WIDENINGS = 4
WIDENING_BATCH = 10


@dataclass
class Timeline:
    room_id: str
    events: list[Event]
    limited: bool
    # the window's events, oldest first, whether or not the filter let them through
    rows: list[TimelineRow]
    # the event just before the window (its state is the state at the timeline's start);
    # None when the window starts with the room's first event or nothing was loaded
    before_event_id: str | None
    prev_batch: str | None

    @property
    def last_event_id(self) -> str | None:
        return self.rows[-1].event_id if self.rows else None


@dataclass(frozen=True)
class TimelineRange:
    """Load events with a stream position in (after, upto]. `newly_joined`: a room the
    user joined since an incremental sync's token, which the client knows nothing of."""

    after: int
    upto: int
    newly_joined: bool = False


class TimelineLoader:
    def __init__(self, db: Database, loader: EventLoader, visibility: HistoryVisibility) -> None:
        self._db = db
        self._loader = loader
        self._visibility = visibility

    async def load(
        self,
        user_id: str,
        room_to_range: dict[str, TimelineRange],
        event_filter: RoomEventFilter,
        limit: int,
    ) -> dict[str, Timeline]:
        """room_id -> its timeline; rooms with no event in range are absent."""
        # rooms sharing a range are loaded in one query
        range_to_rooms: dict[TimelineRange, list[str]] = {}
        for room_id, span in room_to_range.items():
            range_to_rooms.setdefault(span, []).append(room_id)
        room_to_rows: dict[str, list[TimelineRow]] = {}
        for span, room_ids in range_to_rooms.items():
            room_to_rows.update(
                await sync_store.get_recent_events(
                    self._db, room_ids, span.after, span.upto, limit + 1
                )
            )
        # the newest event of each room's range: the state after it is the room's state as
        # this sync sees it
        room_to_end = {room_id: rows[-1].event_id for room_id, rows in room_to_rows.items()}
        # filter and check visibility for every room at once: one pass, not one per room
        everything = [row for rows in room_to_rows.values() for row in _window(rows, limit)]
        room_to_kept: dict[str, list[Event]] = {}
        for event in await self._keep(user_id, everything, event_filter, room_to_end):
            room_to_kept.setdefault(event.room_id, []).append(event)
        timelines: dict[str, Timeline] = {}
        for room_id, rows in room_to_rows.items():
            timelines[room_id] = await self._timeline(
                user_id,
                room_id,
                rows,
                room_to_range[room_id],
                event_filter,
                limit,
                room_to_kept.get(room_id, []),
                room_to_end,
            )
        await self._fill_before(timelines, room_to_range)
        return timelines

    async def _timeline(
        self,
        user_id: str,
        room_id: str,
        rows: list[TimelineRow],
        span: TimelineRange,
        event_filter: RoomEventFilter,
        limit: int,
        kept: list[Event],
        room_to_end: dict[str, str],
    ) -> Timeline:
        # rows holds up to limit + 1 of the newest events; one more than the limit means
        # there is something before the timeline, and that row is the event before it
        more_before = len(rows) > limit
        before = rows[0] if more_before else None
        window = _window(rows, limit)
        widenings = 0
        batch = max(limit * 2, WIDENING_BATCH)
        while more_before and len(kept) < limit and widenings < MAX_WIDENINGS:
            # the filter or history visibility hid some: look further back
            widenings += 1
            older = await sync_store.get_recent_events(
                self._db, [room_id], span.after, window[0].stream - 1, batch + 1
            )
            older_rows = older.get(room_id, [])
            more_before = len(older_rows) > batch
            before = older_rows[0] if more_before else None
            extra = older_rows[1:] if more_before else older_rows
            kept = (await self._keep(user_id, extra, event_filter, room_to_end)) + kept
            window = extra + window
            batch *= 2
        # spec: the limit counts the events the filter lets through, so the oldest kept
        # beyond it go, with the window rows before them
        first_kept = kept[-limit].event_id if len(kept) > limit else None
        kept = kept[-limit:]
        if (
            first_kept is None
            and span.newly_joined
            and kept
            and window[0].event_id != kept[0].event_id
        ):
            # a room joined since the token: the client has none of its history, so events
            # the filter hid before the first one shown make the timeline limited (as
            # Synapse loads such a room), with prev_batch right before that first event
            first_kept = kept[0].event_id
        if first_kept is not None:
            index = next(i for i, row in enumerate(window) if row.event_id == first_kept)
            if index > 0:
                more_before = True
                before = window[index - 1]
                window = window[index:]
        first = window[0] if window else None
        prev_batch = str(RoomPosition.before(first.depth, first.stream)) if first else None
        return Timeline(
            room_id=room_id,
            events=kept,
            limited=more_before,
            rows=window,
            # unknown yet when the window reaches back to `after`: found in _fill_before
            before_event_id=before.event_id if before is not None else None,
            prev_batch=prev_batch,
        )

    async def _keep(
        self,
        user_id: str,
        rows: list[TimelineRow],
        event_filter: RoomEventFilter,
        room_to_end: dict[str, str],
    ) -> list[Event]:
        loaded = await self._loader.get_events(row.event_id for row in rows)
        candidates = [
            loaded[row.event_id]
            for row in rows
            if row.event_id in loaded and event_filter.matches(loaded[row.event_id].pdu)
        ]
        # history visibility reads the state at each event, group by group: fetch the
        # groups of every room in one query first
        groups = await self._loader.state_groups_of(e.event_id for e in candidates)
        await self._loader.load_state_groups(groups.values())
        visible = {
            e.event_id for e in await self._visibility.filter_events_for_client(user_id, candidates)
        }
        # as Synapse: users always see their own membership changes, or a declined invite
        # would never leave the client's room list
        visible.update(
            e.event_id for e in candidates if e.type == "m.room.member" and e.state_key == user_id
        )
        hidden_state = [
            e for e in candidates if e.event_id not in visible and e.state_key is not None
        ]
        if hidden_state:
            visible.update(await self._in_state_at_end(hidden_state, room_to_end))
        return [e for e in candidates if e.event_id in visible]

    async def _in_state_at_end(self, events: list[Event], room_to_end: dict[str, str]) -> set[str]:
        """The events that are part of their room's state as this sync sees it. As Synapse,
        these are shown whatever history visibility says: a user rejoining a room with
        `joined` visibility must still see who joined while they were away, and the state
        is what /state answers them anyway."""
        ends = {room_to_end[e.room_id] for e in events if e.room_id in room_to_end}
        groups = await self._loader.state_groups_of(ends)
        await self._loader.load_state_groups(groups.values())
        found: set[str] = set()
        room_to_state: dict[str, StateMap] = {}
        for event in events:
            end = room_to_end.get(event.room_id)
            group = groups.get(end) if end is not None else None
            if group is None or event.state_key is None:
                continue
            if event.room_id not in room_to_state:
                room_to_state[event.room_id] = await self._loader.get_state_group(group)
            if room_to_state[event.room_id].get((event.type, event.state_key)) == event.event_id:
                found.add(event.event_id)
        return found

    async def _fill_before(
        self, timelines: dict[str, Timeline], room_to_range: dict[str, TimelineRange]
    ) -> None:
        """A window that reaches back to its range's start follows the last event at or
        before `after` (none when `after` is 0: the window starts with the room)."""
        after_to_rooms: dict[int, list[str]] = {}
        for room_id, timeline in timelines.items():
            if timeline.before_event_id is None and not timeline.limited:
                after = room_to_range[room_id].after
                if after > 0:
                    after_to_rooms.setdefault(after, []).append(room_id)
        for after, room_ids in after_to_rooms.items():
            found = await sync_store.get_last_events_at(self._db, room_ids, after)
            for room_id in room_ids:
                timelines[room_id].before_event_id = found.get(room_id)


def _window(rows: list[TimelineRow], limit: int) -> list[TimelineRow]:
    """The rows of a timeline window: without the extra one that shows more lie before."""
    return rows[1:] if len(rows) > limit else rows


def ranges_for(room_ids: Collection[str], after: int, upto: int) -> dict[str, TimelineRange]:
    span = TimelineRange(after, upto)
    return dict.fromkeys(room_ids, span)
