"""The legacy ways of reading rooms that Synapse still serves and older clients, bots and
SyTest still call: the event stream (`GET /events`), the global and per-room initial sync,
and a single event by ID without its room (spec r0.6.1: "Deprecated" endpoints of
"Syncing" and "Getting events for a room").

Built on /sync and room reading, not beside them: each answer is a /sync answer (or a
/messages page) reshaped, so history visibility, filters and token positions stay in one
place. The event stream's tokens are sync tokens.

Events are served in the v1 format these endpoints had (as Synapse): room events carry
`user_id` (their sender), presence events `content.user_id`.

A world_readable room can be peeked by anyone: its room initial sync, then the event stream
with `room_id=` (its events and its members' presence). Read through a sync request with
no device, so the event stream never acknowledges (deletes) to-device messages it does not
show: a device mixing /events and /sync loses none.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.filters import RoomEventFilter
from ranvier.requester import UserRequester
from ranvier.services.presence import PresenceService
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.public_rooms import PublicRoomsService
from ranvier.services.rooms.reading import RoomReadingService, not_found
from ranvier.services.sync.service import SyncRequest, SyncService
from ranvier.services.sync.sources import ReceiptsSource, TypingSource
from ranvier.storage import events as event_store
from ranvier.storage.database import Database
from ranvier.streams.notifier import Notifier
from ranvier.streams.sync_token import SyncToken
from ranvier.streams.tokens import StreamToken

JsonDict = dict[str, Any]

# Synapse's defaults for the event stream and the initial syncs
DEFAULT_STREAM_LIMIT = 10
DEFAULT_INITIAL_SYNC_LIMIT = 10
MAX_LIMIT = 1000
# the shortest pause between two looks at a peeked room
_MIN_WAIT_SECONDS = 0.05

# a /sync filter that selects nothing: its answer is only the current token
_NOTHING = json.dumps(
    {
        "room": {"rooms": []},
        "presence": {"types": []},
        "account_data": {"types": []},
    }
)


# account data that /sync carries but is not account data to the legacy endpoints (Synapse
# keeps push rules apart, and its initial sync lists only what the user stored)
_NOT_ACCOUNT_DATA = frozenset({"m.push_rules"})


def _v1(event: JsonDict, room_id: str | None = None) -> JsonDict:
    """A room event as the legacy endpoints serve it: with its room and, as the v1 format
    had, `user_id` (its sender)."""
    served = dict(event)
    if room_id is not None:
        served["room_id"] = room_id
    if "sender" in served:
        served["user_id"] = served["sender"]
    return served


def _with_room(events: Iterable[JsonDict], room_id: str) -> list[JsonDict]:
    return [_v1(event, room_id) for event in events]


def _v1_presence(events: Iterable[JsonDict]) -> list[JsonDict]:
    """Presence as the legacy endpoints serve it: the user also in `content.user_id`."""
    return [
        {**event, "content": {**event.get("content", {}), "user_id": event.get("sender")}}
        for event in events
    ]


def _events_of(section: JsonDict | None, key: str) -> list[JsonDict]:
    if not section:
        return []
    part = section.get(key) or {}
    events: list[JsonDict] = part.get("events", [])
    return events


@dataclass
class LegacySyncService:
    db: Database
    sync: SyncService
    reading: RoomReadingService
    loader: EventLoader
    public_rooms: PublicRoomsService
    # for peeking (presence of a room's members; waiting on a room the user is not in) and
    # the members' presence in initial syncs
    presence: PresenceService | None = None
    notifier: Notifier | None = None
    # a peeked room's receipts and typing, which /sync gives only to members
    receipts: ReceiptsSource | None = None
    typing: TypingSource | None = None

    # -- GET /events --------------------------------------------------------------------------

    async def current_token(self, requester: UserRequester) -> SyncToken:
        body = await self.sync.sync(self._request(requester, None, 0, _NOTHING, device=False))
        # the event stream shows no to-device messages: its tokens keep the device's inbox
        # position as it was (0: everything not yet acknowledged through /sync)
        return SyncToken.parse(body["next_batch"]).advanced(to_device=0)

    async def event_stream(
        self,
        requester: UserRequester,
        *,
        from_token: SyncToken | None,
        timeout_ms: int,
        limit: int,
        room_id: str | None = None,
    ) -> JsonDict:
        """Everything new for the user after `from_token` (or after now), oldest first:
        room events, then typing and receipts, account data and presence. Waits up to
        `timeout_ms` for something to happen.

        Room events come in stream order, at most `limit`; when more wait, `end` stops after
        the last one given, so the next call continues with the rest. With `room_id`, only
        that room's events: a room the user is in, or a world_readable one (peeking); any
        other is 403 at once, as is (400) a guest who names no room, as Synapse."""
        if room_id is not None:
            # members, and anyone in a world_readable room; not former members (Synapse)
            access = await self.reading.visibility.check_user_can_see_room(
                requester.user_id, room_id, allow_departed_users=False
            )
            if access.membership != "join":
                return await self._peek_stream(
                    requester, room_id, from_token=from_token, timeout_ms=timeout_ms, limit=limit
                )
        elif requester.is_guest:
            raise MatrixError(400, "M_UNKNOWN", "Guest users must specify room_id param")
        since = from_token if from_token is not None else await self.current_token(requester)
        # the room timeline of this answer is not used (it may be cut to its newest events):
        # the events are read page by page below; the answer's token says how far to read
        filter_json = json.dumps({"room": {"timeline": {"limit": 1}}})
        body = await self.sync.sync(
            self._request(requester, since, timeout_ms, filter_json, device=False)
        )
        upto = SyncToken.parse(body["next_batch"]).advanced(to_device=since.to_device)
        rooms = body.get("rooms", {})
        room_ids = [
            found
            for found in [*rooms.get("join", {}), *rooms.get("leave", {})]
            if room_id is None or found == room_id
        ]
        chunk, events_end = await self._room_events(requester, room_ids, since, upto, limit)
        end = upto if events_end is None else upto.advanced(events=events_end)
        for joined_id, room in rooms.get("join", {}).items():
            if room_id is None or joined_id == room_id:
                chunk += _with_room(_events_of(room, "ephemeral"), joined_id)
                chunk += _with_room(_events_of(room, "account_data"), joined_id)
        if room_id is None:
            chunk += _events_of(body, "account_data")
            chunk += _v1_presence(_events_of(body, "presence"))
        return {"chunk": chunk, "start": str(since), "end": str(end)}

    async def _peek_stream(
        self,
        requester: UserRequester,
        room_id: str,
        *,
        from_token: SyncToken | None,
        timeout_ms: int,
        limit: int,
    ) -> JsonDict:
        """The event stream of a world_readable room the user is not in: its events and
        its members' presence after `from_token`, waiting up to `timeout_ms` for some."""
        start = since = (
            from_token if from_token is not None else await self.current_token(requester)
        )
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            upto = (await self.current_token(requester)).advanced(to_device=since.to_device)
            chunk, events_end = await self._room_events(requester, [room_id], since, upto, limit)
            end = upto if events_end is None else upto.advanced(events=events_end)
            if self.presence is not None and upto.presence > since.presence:
                chunk += _v1_presence(
                    await self.presence.get_updates(
                        requester.user_id, None, [room_id], since.presence, upto.presence
                    )
                )
            for source in (self.receipts, self.typing):
                if source is not None and upto.get(source.stream_name) > since.get(
                    source.stream_name
                ):
                    updates = await source.get_updates(
                        requester.user_id,
                        None,
                        [room_id],
                        since.get(source.stream_name),
                        upto.get(source.stream_name),
                    )
                    chunk += _with_room(updates.values(), room_id)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if chunk or remaining_ms <= 0 or self.notifier is None or self.notifier.closed:
                return {"chunk": chunk, "start": str(start), "end": str(end)}
            waited = time.monotonic()
            await self.notifier.wait(requester.user_id, [room_id], upto, remaining_ms)
            if time.monotonic() - waited < _MIN_WAIT_SECONDS:
                # woken for a position not readable yet: let it land rather than spin
                await asyncio.sleep(_MIN_WAIT_SECONDS)
            since = upto

    async def _room_events(
        self,
        requester: UserRequester,
        room_ids: list[str],
        since: SyncToken,
        upto: SyncToken,
        limit: int,
    ) -> tuple[list[JsonDict], int | None]:
        """The first `limit` visible events of these rooms after `since` up to `upto`, in
        stream order, and the stream position to continue from if some were left out."""
        found: list[JsonDict] = []
        # each room's last event read, where its page was full (more may follow it)
        full_page_ends: list[str] = []
        for room_id in room_ids:
            page = await self.reading.messages(
                requester,
                room_id,
                from_token=StreamToken(since.events),
                to_token=StreamToken(upto.events),
                backwards=False,
                limit=limit,
                event_filter=RoomEventFilter(),
            )
            found += [_v1(event) for event in page["chunk"]]
            if len(page["chunk"]) >= limit:
                full_page_ends.append(page["chunk"][-1]["event_id"])
        if not found:
            return [], None
        streams = await event_store.get_stream_orderings(self.db, (e["event_id"] for e in found))
        found.sort(key=lambda event: streams.get(event["event_id"], 0))
        # the stream is read up to where every room is known complete: no further than
        # a full page's last event, nor than the `limit`th event
        ends = [streams.get(event_id, since.events) for event_id in full_page_ends]
        if len(found) > limit:
            ends.append(streams.get(found[limit - 1]["event_id"], since.events))
        if not ends:
            return found, None
        cut = min(ends)
        return [e for e in found if streams.get(e["event_id"], 0) <= cut], cut

    # -- GET /initialSync ---------------------------------------------------------------------

    async def initial_sync(
        self, requester: UserRequester, *, limit: int, archived: bool
    ) -> JsonDict:
        """Every room of the user with its newest `limit` events and current state (rooms
        left too with `archived`), the user's account data and the presence of people they
        share rooms with."""
        body = await self._snapshot(requester, limit=limit, include_leave=archived, rooms=None)
        rooms_ret: list[JsonDict] = []
        sections = body.get("rooms", {})
        for room_id, room in sections.get("invite", {}).items():
            rooms_ret.append(await self._invited_room(requester, room_id, room))
        for membership in ("join", "leave") if archived else ("join",):
            for room_id, room in sections.get(membership, {}).items():
                rooms_ret.append(
                    await self._room(requester, room_id, room, membership, body, limit)
                )
        joined = list(sections.get("join", {}))
        return {
            "end": body["next_batch"],
            "rooms": rooms_ret,
            "presence": await self._presence(requester, joined, body),
            "account_data": [
                event
                for event in _events_of(body, "account_data")
                if event.get("type") not in _NOT_ACCOUNT_DATA
            ],
            "receipts": [event for room in rooms_ret for event in room.pop("receipts", [])],
        }

    async def _presence(
        self, requester: UserRequester, room_ids: list[str], body: JsonDict
    ) -> list[JsonDict]:
        """The presence of the user and of everyone in these rooms, as Synapse's initial
        syncs list it: offline members too, so a client knows rather than guesses."""
        if self.presence is None:
            return _v1_presence(_events_of(body, "presence"))
        upto = SyncToken.parse(body["next_batch"]).presence
        return _v1_presence(
            await self.presence.get_updates(
                requester.user_id, None, room_ids, 0, upto, include_offline=True
            )
        )

    async def room_initial_sync(
        self, requester: UserRequester, room_id: str, *, limit: int
    ) -> JsonDict:
        """GET /rooms/{roomId}/initialSync: one room, as the global initial sync shows it,
        with the presence of its members (none once the user left: what they see of the
        room stops there). Anyone may peek into a world_readable room this way."""
        # refuses, as /state does, anyone who may not read the room
        await self.reading.get_state(requester, room_id)
        body = await self._snapshot(requester, limit=limit, include_leave=True, rooms=[room_id])
        sections = body.get("rooms", {})
        for membership in ("join", "leave"):
            room = sections.get(membership, {}).get(room_id)
            if room is not None:
                served = await self._room(requester, room_id, room, membership, body, limit)
                if membership == "join":
                    served["presence"] = await self._presence(requester, [room_id], body)
                else:
                    served["presence"] = []
                    served["receipts"] = []
                return served
        # not a member but allowed to read: a world_readable room, peeked
        return await self._peeked_room(requester, room_id, body, limit)

    async def _peeked_room(
        self, requester: UserRequester, room_id: str, body: JsonDict, limit: int
    ) -> JsonDict:
        """A world_readable room the user is not in, as Synapse answers its initial sync:
        its current state, newest messages and members' presence, without `membership`."""
        end = SyncToken.parse(body["next_batch"])
        state = await self.reading.get_state(requester, room_id)
        events: list[JsonDict] = []
        start = str(end)
        if limit > 0:
            page = await self.reading.messages(
                requester,
                room_id,
                from_token=StreamToken(end.events),
                to_token=None,
                backwards=True,
                limit=limit,
                event_filter=RoomEventFilter(),
            )
            events = list(reversed(page["chunk"]))
            start = page.get("end", start)
        return {
            "room_id": room_id,
            "visibility": await self.public_rooms.get_visibility(room_id),
            "messages": {
                "chunk": [_v1(e, room_id) for e in events],
                "start": start,
                "end": str(end),
            },
            "state": [_v1(e, room_id) for e in state],
            "presence": await self._presence(requester, [room_id], body),
            "account_data": [],
            "receipts": [],
        }

    async def _snapshot(
        self,
        requester: UserRequester,
        *,
        limit: int,
        include_leave: bool,
        rooms: list[str] | None,
    ) -> JsonDict:
        room_filter: JsonDict = {
            # /sync takes no limit of 0: one event is read and dropped below
            "timeline": {"limit": max(limit, 1)},
            "include_leave": include_leave,
        }
        if rooms is not None:
            room_filter["rooms"] = rooms
        filter_json = json.dumps({"room": room_filter})
        return await self.sync.sync(self._request(requester, None, 0, filter_json))

    async def _room(
        self,
        requester: UserRequester,
        room_id: str,
        room: JsonDict,
        membership: str,
        body: JsonDict,
        limit: int,
    ) -> JsonDict:
        timeline = room.get("timeline", {})
        events = _with_room(timeline.get("events", []), room_id)
        # the state as of the timeline's end: the state before it, then its state events
        state: dict[tuple[str, str], JsonDict] = {}
        for event in [*_with_room(_events_of(room, "state"), room_id), *events]:
            if "state_key" in event:
                state[(event["type"], event["state_key"])] = event
        if limit == 0:
            events = []
        end = body["next_batch"]
        start = timeline.get("prev_batch", end) if events else end
        visibility = await self.public_rooms.get_visibility(room_id)
        return {
            "room_id": room_id,
            "membership": membership,
            "visibility": visibility,
            "messages": {"chunk": events, "start": start, "end": end},
            "state": list(state.values()),
            "account_data": _events_of(room, "account_data"),
            "receipts": [
                event
                for event in _with_room(_events_of(room, "ephemeral"), room_id)
                if event.get("type") == "m.receipt"
            ],
        }

    async def _invited_room(
        self, requester: UserRequester, room_id: str, room: JsonDict
    ) -> JsonDict:
        served: JsonDict = {"room_id": room_id, "membership": "invite"}
        for event in _events_of(room, "invite_state"):
            if event.get("type") == "m.room.member" and event.get("state_key") == (
                requester.user_id
            ):
                served["inviter"] = event.get("sender")
                served["invite"] = {**event, "room_id": room_id}
        served["visibility"] = await self.public_rooms.get_visibility(room_id)
        return served

    # -- GET /events/{eventId} ----------------------------------------------------------------

    async def get_event(self, requester: UserRequester, event_id: str) -> JsonDict:
        """An event by its ID alone, if the requester may see it; 404 otherwise."""
        event = await self.loader.get_event(event_id)
        if event is None:
            raise not_found()
        return await self.reading.get_event(requester, event.room_id, event_id)

    # -------------------------------------------------------------------------------------

    @staticmethod
    def _request(
        requester: UserRequester,
        since: SyncToken | None,
        timeout_ms: int,
        filter_json: str,
        *,
        device: bool = True,
    ) -> SyncRequest:
        return SyncRequest(
            user_id=requester.user_id,
            # without the device, the sync neither reads nor acknowledges its to-device
            # messages (the legacy endpoints do not show them)
            device_id=requester.device_id if device else None,
            since=since,
            timeout_ms=timeout_ms,
            full_state=False,
            set_presence=None,
            filter=filter_json,
        )
