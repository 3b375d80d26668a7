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
from ranvier.storage.sync import TimelineRow
from ranvier.streams.tokens import RoomPosition

# when a filter hides events, windows are widened this many times before giving up and
# answering with fewer events (the client can page back with prev_batch)
MAX_WIDENINGS = 4


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
    """Load events with a stream position in (after, upto]."""

    after: int
    upto: int


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
        # filter and check visibility for every room at once: one pass, not one per room
        everything = [row for rows in room_to_rows.values() for row in _window(rows, limit)]
        room_to_kept: dict[str, list[Event]] = {}
        for event in await self._keep(user_id, everything, event_filter):
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
    ) -> Timeline:
        # rows holds up to limit + 1 of the newest events; one more than the limit means
        # there is something before the timeline, and that row is the event before it
        more_before = len(rows) > limit
        before = rows[0] if more_before else None
        window = _window(rows, limit)
        widenings = 0
        while more_before and len(kept) < limit and widenings < MAX_WIDENINGS:
            # the filter or history visibility hid some: look further back
            widenings += 1
            older = await sync_store.get_recent_events(
                self._db, [room_id], span.after, window[0].stream - 1, limit + 1
            )
            older_rows = older.get(room_id, [])
            more_before = len(older_rows) > limit
            before = older_rows[0] if more_before else None
            extra = older_rows[1:] if more_before else older_rows
            kept = (await self._keep(user_id, extra, event_filter)) + kept
            window = extra + window
        if len(kept) > limit:
            # drop the oldest kept events and the window rows before them
            first_kept = kept[-limit].event_id
            kept = kept[-limit:]
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
        self, user_id: str, rows: list[TimelineRow], event_filter: RoomEventFilter
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
        return [
            e
            for e in candidates
            if e.event_id in visible or (e.type == "m.room.member" and e.state_key == user_id)
        ]

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
