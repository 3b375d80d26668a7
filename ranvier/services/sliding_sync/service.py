"""Simplified sliding sync (MSC4186): a connection's room lists, subscriptions and
extensions, from the same sources as /sync.

Every response hands out a new `pos`, stored (storage/sliding_sync.py) with the sync
token it reads up to and, per room, the room-events position up to which the connection
has that room's news. A request from a `pos` therefore sends only the rooms in its
lists' ranges or subscriptions with events since, plus those never sent (`initial`).
A `pos` stays valid until the connection's next-but-one request (the one just used
stays, so a client whose response was lost can retry it), across restarts; an unknown
one is 400 M_UNKNOWN_POS and the client starts the connection again. A request that finds
nothing waits, up to its `timeout`, on the notifier as /sync does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.services.sliding_sync.extensions import ExtensionContext, has_news
from ranvier.services.sliding_sync.facts import RoomFactsLoader
from ranvier.services.sliding_sync.request import RoomParams, SlidingSyncRequest
from ranvier.services.sliding_sync.required_state import combine
from ranvier.services.sliding_sync.room_list import (
    ListedRoom,
    bump_stamp,
    in_ranges,
    matches,
    sort_rooms,
)
from ranvier.services.sliding_sync.room_list_cache import RoomListCache
from ranvier.services.sliding_sync.rooms import RoomToSend, SlidingSyncRooms
from ranvier.storage import sliding_sync as store
from ranvier.storage.database import Database
from ranvier.storage.sliding_sync import SentRoom
from ranvier.storage.sync import UserMemberships
from ranvier.streams.notifier import Notifier
from ranvier.streams.sync_token import InvalidSyncToken, SyncToken

JsonDict = dict[str, Any]

ACTIVE = ("join", "invite", "knock")
# a connection unused this long is taken as abandoned: its positions go (a client that
# comes back gets M_UNKNOWN_POS and starts again)
POSITION_LIFETIME_MS = 7 * 24 * 3600 * 1000
# how often the abandoned positions are looked for, at a request's end
PRUNE_INTERVAL_MS = 3600 * 1000
# A response that sends no room changes nothing the connection holds but the token, so its
# `pos` is the stored one with the new token carried in it ("<pos_id>-<token>"): nothing is
# written. A stored position older than this is written anew all the same, so a connection
# that only ever polls is not pruned as abandoned.
CARRIED_POSITION_MAX_AGE_MS = 24 * 3600 * 1000
DEPARTED = ("leave", "ban")


class Extensions(Protocol):
    async def build(self, ctx: ExtensionContext, requested: JsonDict) -> JsonDict: ...


@dataclass(frozen=True)
class _Prior:
    pos_id: int
    token: SyncToken
    room_to_sent: dict[str, SentRoom]
    stored_ts: int


@dataclass(frozen=True)
class _Pass:
    body: JsonDict
    token: SyncToken
    room_to_sent: dict[str, SentRoom]
    # rooms whose changes concern the user: a long-poll waits on them
    active_rooms: list[str]
    has_news: bool


class SlidingSyncService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        notifier: Notifier,
        rooms: SlidingSyncRooms,
        facts: RoomFactsLoader,
        room_list: RoomListCache,
        current_token: Callable[[], Awaitable[SyncToken]],
        extensions: Extensions | None = None,
    ) -> None:
        self._db = db
        self._sender = sender
        self._notifier = notifier
        self._rooms = rooms
        self._facts = facts
        self._room_list = room_list
        # every stream's position up to which all has committed, the events one first
        self._current_token = current_token
        # None until the extensions are served: then `extensions` answers {}
        self._extensions = extensions
        self._last_prune_ms = 0

    async def sync(self, request: SlidingSyncRequest) -> JsonDict:
        prior = await self._prior(request)
        deadline = time.monotonic() + request.timeout_ms / 1000
        while True:
            found = await self._once(request, prior)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if prior is None or found.has_news or remaining_ms <= 0 or self._notifier.closed:
                break
            await self._notifier.wait(
                request.user_id, found.active_rooms, found.token, remaining_ms
            )
        if (
            prior is not None
            and not found.body["rooms"]
            and now_ms() - prior.stored_ts < CARRIED_POSITION_MAX_AGE_MS
        ):
            # the rooms looked at but not sent had nothing new: what the connection holds of
            # them is unchanged, only the token moves on
            return {"pos": f"{prior.pos_id}-{found.token}", **found.body}
        pos_id = await store.add_position(
            self._db,
            user_id=request.user_id,
            device_id=request.device_id or "",
            conn_id=request.conn_id,
            token=str(found.token),
            room_to_sent=found.room_to_sent,
            created_ts=now_ms(),
            keep_from=prior.pos_id if prior is not None else None,
        )
        await self._prune()
        return {"pos": str(pos_id), **found.body}

    async def on_devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        """DeviceService.on_devices_deleted: a logged-out device's connections go."""
        await store.delete_device_positions(self._db, user_id, device_ids)

    async def _prune(self) -> None:
        now = now_ms()
        if now - self._last_prune_ms < PRUNE_INTERVAL_MS:
            return
        self._last_prune_ms = now
        await store.delete_positions_before(self._db, now - POSITION_LIFETIME_MS)

    async def _prior(self, request: SlidingSyncRequest) -> _Prior | None:
        if request.pos is None:
            return None
        stored_id, carried_mark, carried = request.pos.partition("-")
        stored = None
        if stored_id.isdigit() and len(stored_id) < 19 and bool(carried_mark) == bool(carried):
            stored = await store.get_position(self._db, int(stored_id))
        if (
            stored is None
            or stored.user_id != request.user_id
            or stored.device_id != (request.device_id or "")
            or stored.conn_id != request.conn_id
        ):
            raise MatrixError(400, "M_UNKNOWN_POS", "Unknown position: start the connection again")
        try:
            token = SyncToken.parse(carried or stored.token)
        except InvalidSyncToken:
            raise MatrixError(400, "M_UNKNOWN_POS", "Unknown position") from None
        return _Prior(stored.pos_id, token, stored.room_to_sent, stored.created_ts)

    async def _once(self, request: SlidingSyncRequest, prior: _Prior | None) -> _Pass:
        # positions first: every read below stops at them
        token = await self._current_token()
        upto = token.events
        since = prior.token.events if prior is not None else 0
        memberships, stamps, showable = await self._room_list.get(request.user_id, since, upto)
        departed = self._departed_since(memberships, stamps, upto) if prior is not None else []
        listed = [*showable, *departed]
        facts = await self._facts.load(
            request.user_id, listed, [one.filters for one in request.lists.values()]
        )
        room_to_params: dict[str, list[RoomParams]] = {}
        lists_body: JsonDict = {}
        list_rooms: dict[str, list[str]] = {}
        by_id = {room.room_id: room for room in listed}
        # the kept order, unless rooms left since `pos` join it
        ordered = sort_rooms(listed) if departed else showable
        for name, wanted in request.lists.items():
            kept = [room for room in ordered if matches(room, wanted.filters, facts)]
            lists_body[name] = {"count": len(kept)}
            shown = in_ranges(kept, wanted.ranges)
            list_rooms[name] = [room.room_id for room in shown]
            for room in shown:
                room_to_params.setdefault(room.room_id, []).append(wanted.params)
        subscribed: list[str] = []
        for room_id, params in request.room_subscriptions.items():
            listed_room = by_id.get(room_id) or self._departed(memberships, room_id)
            if listed_room is None:
                # as Synapse: a room the user is not in (nor left) is not sent
                continue
            by_id[room_id] = listed_room
            subscribed.append(room_id)
            room_to_params.setdefault(room_id, []).append(params)
        sent = dict(prior.room_to_sent) if prior is not None else {}
        candidates: list[RoomToSend] = []
        for room_id, asked in room_to_params.items():
            room_params = combine(asked)
            sent_since = self._sent_at(sent, memberships, by_id[room_id])
            held = sent[room_id].required_state if sent_since is not None else None
            candidates.append(
                RoomToSend(
                    by_id[room_id],
                    room_params,
                    sent_since,
                    room_id in facts.dm_rooms,
                    # as Synapse (and the proxy before it): a room asked for with a longer
                    # timeline than it was sent with is sent again with that much history
                    expanded=sent_since is not None
                    and room_params.timeline_limit > sent[room_id].timeline_limit
                    and by_id[room_id].membership not in ("invite", "knock"),
                    # a room asked for with state it was not sent with (a client opening a
                    # room subscribes to more of it) is sent with that state
                    held_state=(
                        held
                        if held is not None and not set(room_params.required_state) <= set(held)
                        else None
                    ),
                )
            )
        # rooms may have been sent at different positions: ask from the oldest, then
        # `changed` looks at each from its own
        sent_at = [s for c in candidates if (s := c.since) is not None]
        changed = (
            self._sender.room_changes.changed_since(room_to_params, min(sent_at))
            if sent_at
            else None
        )
        to_send = await self._rooms.changed(candidates, upto, changed)
        rooms = await self._rooms.build(
            request.user_id,
            request.device_id,
            to_send,
            upto,
            since if prior is not None else None,
        )
        # the rooms looked at are up to date to here, sent or not
        for one in candidates:
            room_id = one.room.room_id
            limit = one.params.timeline_limit
            required_state: tuple[tuple[str, str], ...] | None = one.params.required_state
            previous = sent.get(room_id)
            if previous is not None and not one.expanded and one.since is not None:
                # a shorter timeline leaves a gap only if it was limited (as Synapse)
                shortened = (
                    rooms.get(room_id, {}).get("limited") and limit < previous.timeline_limit
                )
                limit = limit if shortened else previous.timeline_limit
                if room_id not in rooms:
                    # not sent: the connection still holds what it was sent with
                    required_state = previous.required_state
            sent[room_id] = SentRoom(upto, limit, required_state)
        active = [room_id for room_id, m in memberships.now.items() if m.membership in ACTIVE]
        extensions: JsonDict = {}
        if self._extensions is not None and request.extensions:
            extensions = await self._extensions.build(
                ExtensionContext(
                    user_id=request.user_id,
                    device_id=request.device_id,
                    from_token=prior.token if prior is not None else None,
                    to_token=token,
                    list_rooms=list_rooms,
                    subscribed_rooms=subscribed,
                    joined_rooms=frozenset(
                        room_id for room_id, m in memberships.now.items() if m.membership == "join"
                    ),
                    initial_rooms=[r for r, body in rooms.items() if body.get("initial")],
                ),
                request.extensions,
            )
        body: JsonDict = {"lists": lists_body, "rooms": rooms, "extensions": extensions}
        return _Pass(body, token, sent, active, bool(rooms) or has_news(extensions))

    @staticmethod
    def _departed_since(
        memberships: UserMemberships, stamps: dict[str, int], upto: int
    ) -> list[ListedRoom]:
        """On a request from a `pos`, the rooms left since it: a list shows them too, so
        the client learns they went (the others it may show are the cache's sorted `showable`)."""
        wanted = [
            m
            for m in memberships.now.values()
            if not m.forgotten
            and m.membership in DEPARTED
            and memberships.before.get(m.room_id) != m
        ]
        return [
            ListedRoom(
                m.room_id,
                m.membership,
                m.event_id,
                m.stream,
                bump_stamp(m.membership, m.stream, stamps.get(m.room_id), upto),
            )
            for m in wanted
        ]

    @staticmethod
    def _sent_at(
        sent: dict[str, SentRoom], memberships: UserMemberships, room: ListedRoom
    ) -> int | None:
        """Where the connection has the room up to; None: it must be sent whole, as it
        was never sent, or the user joined since the request's `pos` (what was sent
        while invited, or before leaving, is not the room's history)."""
        since = sent[room.room_id][0] if room.room_id in sent else None
        before = memberships.before.get(room.room_id)
        if room.membership == "join" and (before is None or before.membership != "join"):
            return None
        return since

    @staticmethod
    def _departed(memberships: UserMemberships, room_id: str) -> ListedRoom | None:
        m = memberships.now.get(room_id)
        if m is None or m.forgotten or m.membership not in DEPARTED:
            return None
        return ListedRoom(room_id, m.membership, m.event_id, m.stream, m.stream)
