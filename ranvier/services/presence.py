"""Presence (spec: client-server-api "Presence").

A user is online, unavailable or offline, with an optional status message. Clients set it
with PUT /presence/{userId}/status or the `set_presence` parameter of /sync; the server
moves users on by itself, as Synapse does:

- online and not active (no presence update, no syncing from offline) for IDLE_TIMEOUT_MS
  (5 minutes) -> unavailable;
- online or unavailable and no /sync for SYNC_ONLINE_TIMEOUT_MS -> offline. Synapse uses 30
  seconds counted from the end of the last sync; Ranvier only sees syncs start, so it waits
  60 seconds from the start of the last one, which covers a client's usual 30 second
  long-poll plus its round trip.

Changes a client can see are stored with a position in the presence stream; how recently
a user was active and synced is kept in memory between them. With `presence.enabled: false`
nothing is recorded: GET answers offline and PUT is accepted and ignored, as in Synapse.

Users of other servers have their presence here too, as their server sends it
(services/federation/presence_edus.py): stored like ours, and moved to offline only when
their server has said nothing for REMOTE_TIMEOUT_MS (its own timeouts are its business;
it says again at least every 25 minutes, as we do for ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.services.stream_notify import Notify
from ranvier.storage.presence import PRESENCE_STREAM, PresenceState, PresenceStore

logger = logging.getLogger(__name__)

ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)

IDLE_TIMEOUT_MS = 5 * 60 * 1000
SYNC_ONLINE_TIMEOUT_MS = 60 * 1000
# as Synapse: active within the last minute counts as currently active
CURRENTLY_ACTIVE_MS = 60 * 1000
# as Synapse: another server's user it has said nothing of for this long is offline
REMOTE_TIMEOUT_MS = 30 * 60 * 1000
# how often the timeouts are checked
TIMER_INTERVAL_SECONDS = 5.0

# (user_a, user_b) -> whether they share a joined room now
SharedRoomCheck = Callable[[str, str], Awaitable[bool]]
# user_id -> the rooms the user is joined to
JoinedRooms = Callable[[str], Awaitable[list[str]]]


class PresenceOutbound(Protocol):
    """Where our users' presence leaves for other servers (presence_edus.py)."""

    def changed(self, state: PresenceState) -> None:
        """A change others can see, of one of our users."""

    def unchanged(self, state: PresenceState, now: int) -> None:
        """One of our users not offline, as the timeouts found them still."""

    def remote_joined(self, room_id: str, server: str, joiners: set[str]) -> None:
        """`joiners`, users of `server`, joined the room: if it is new to the room it
        should know our members' presence."""


def offline(user_id: str) -> PresenceState:
    return PresenceState(
        user_id=user_id,
        state=OFFLINE,
        status_msg=None,
        last_active_ts=0,
        last_user_sync_ts=0,
        currently_active=False,
    )


def timed_out(state: PresenceState, now: int) -> PresenceState | None:
    """The state the timeouts move `state` to at `now`, or None if it stays as it is."""
    if state.state == OFFLINE:
        return None
    if now - state.last_user_sync_ts > SYNC_ONLINE_TIMEOUT_MS:
        return replace(state, state=OFFLINE, currently_active=False)
    if state.state == ONLINE and now - state.last_active_ts > IDLE_TIMEOUT_MS:
        return replace(state, state=UNAVAILABLE, currently_active=False)
    if state.currently_active and now - state.last_active_ts > CURRENTLY_ACTIVE_MS:
        return replace(state, currently_active=False)
    return None


def remote_timed_out(state: PresenceState, now: int) -> PresenceState | None:
    """For another server's user, whose `last_user_sync_ts` is when their server last
    spoke of them: offline once it has been silent REMOTE_TIMEOUT_MS."""
    if state.state == OFFLINE or now - state.last_user_sync_ts <= REMOTE_TIMEOUT_MS:
        return None
    return replace(state, state=OFFLINE, currently_active=False)


def presence_content(state: PresenceState, now: int) -> dict[str, Any]:
    """The content of an m.presence event, and the body of GET /presence/{userId}/status."""
    content: dict[str, Any] = {"presence": state.state}
    if state.last_active_ts:
        content["last_active_ago"] = max(0, now - state.last_active_ts)
    if state.status_msg is not None:
        content["status_msg"] = state.status_msg
    if state.state == ONLINE:
        content["currently_active"] = state.currently_active
    return content


class PresenceService:
    stream_name = PRESENCE_STREAM

    def __init__(
        self,
        store: PresenceStore,
        shares_room: SharedRoomCheck,
        joined_rooms: JoinedRooms,
        notify: Notify,
        *,
        server_name: str,
        enabled: bool,
        position: int,
    ) -> None:
        self._server_name = server_name
        self._store = store
        self._shares_room = shares_room
        self._joined_rooms = joined_rooms
        self._notify = notify
        self.enabled = enabled
        self._position = position
        # users not offline, whose timers run; bounded by who is online, not who is known
        self._user_id_to_state: dict[str, PresenceState] = {}
        self._timer: asyncio.Task[None] | None = None
        self._local_suffix = ":" + server_name
        self.outbound: PresenceOutbound | None = None

    @classmethod
    async def create(
        cls,
        store: PresenceStore,
        shares_room: SharedRoomCheck,
        joined_rooms: JoinedRooms,
        notify: Notify,
        *,
        server_name: str,
        enabled: bool,
    ) -> PresenceService:
        service = cls(
            store,
            shares_room,
            joined_rooms,
            notify,
            server_name=server_name,
            enabled=enabled,
            position=await store.current_stream_position(),
        )
        for state in await store.get_not_offline():
            service._user_id_to_state[state.user_id] = state
        return service

    def current_position(self) -> int:
        return self._position

    def start(self) -> None:
        if self.enabled and self._timer is None:
            self._timer = asyncio.create_task(self._run_timeouts())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def _run_timeouts(self) -> None:
        while True:
            await asyncio.sleep(TIMER_INTERVAL_SECONDS)
            try:
                await self.apply_timeouts(now_ms())
            except Exception:
                logger.exception("Presence timeouts failed; trying again shortly")

    def is_ours(self, user_id: str) -> bool:
        return user_id.endswith(self._local_suffix)

    async def apply_timeouts(self, now: int) -> None:
        for state in list(self._user_id_to_state.values()):
            ours = self.is_ours(state.user_id)
            moved = timed_out(state, now) if ours else remote_timed_out(state, now)
            if moved is not None:
                await self._write(moved)
            elif ours and self.outbound is not None:
                self.outbound.unchanged(state, now)

    async def _current(self, user_id: str) -> PresenceState:
        state = self._user_id_to_state.get(user_id)
        if state is None:
            state = await self._store.get(user_id) or offline(user_id)
        return state

    async def _write(self, state: PresenceState) -> None:
        position = await self._store.put(state)
        self._position = max(self._position, position)
        self._remember(state)
        rooms = await self._joined_rooms(state.user_id)
        self._notify(PRESENCE_STREAM, position, rooms=rooms, users=(state.user_id,))
        if self.outbound is not None and self.is_ours(state.user_id):
            self.outbound.changed(state)

    async def _update(self, state: PresenceState, new: PresenceState) -> None:
        visible = (new.state, new.status_msg, new.currently_active) != (
            state.state,
            state.status_msg,
            state.currently_active,
        )
        if visible:
            await self._write(new)
        else:
            self._remember(new)

    def _remember(self, state: PresenceState) -> None:
        if state.state == OFFLINE:
            # offline users need no timer; the next lookup reads the stored row
            self._user_id_to_state.pop(state.user_id, None)
        else:
            self._user_id_to_state[state.user_id] = state

    async def set_status(
        self, requester: str, user_id: str, presence: str, status_msg: str | None
    ) -> None:
        """PUT /presence/{userId}/status"""
        if requester != user_id:
            raise MatrixError(403, "M_FORBIDDEN", "Cannot set presence state for another user")
        if presence not in STATES:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"'presence' must be one of {', '.join(STATES)}"
            )
        if not self.enabled:
            return
        state = await self._current(user_id)
        now = now_ms()
        new = replace(
            state,
            state=presence,
            status_msg=status_msg,
            last_active_ts=now if presence == ONLINE else state.last_active_ts,
            # setting presence is using the account: the sync timeout starts again
            last_user_sync_ts=now,
            currently_active=presence == ONLINE,
        )
        await self._update(state, new)

    async def set_presence_from_sync(self, user_id: str, presence: str) -> None:
        """`set_presence` of a /sync request: "online" (the default) marks an offline user
        online but leaves a chosen "unavailable" alone, as Synapse; "offline" syncs without
        touching presence."""
        if not self.enabled or presence == OFFLINE:
            return
        state = await self._current(user_id)
        now = now_ms()
        new = replace(state, last_user_sync_ts=now)
        if presence == UNAVAILABLE and state.state != UNAVAILABLE:
            new = replace(new, state=UNAVAILABLE, currently_active=False)
        elif presence == ONLINE and state.state == OFFLINE:
            new = replace(new, state=ONLINE, last_active_ts=now, currently_active=True)
        await self._update(state, new)

    async def bump_active(self, user_id: str) -> None:
        """The user did something (sent an event, typed, read): active now, and online
        again if the idle timeout had made them unavailable, as Synapse does."""
        if not self.enabled:
            return
        state = await self._current(user_id)
        new = replace(state, last_active_ts=now_ms(), currently_active=state.state != OFFLINE)
        if state.state == UNAVAILABLE:
            new = replace(new, state=ONLINE, currently_active=True)
        await self._update(state, new)

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """RoomEventSender callback: sending an event is activity of its (local) sender,
        and a user joining a room tells its members their presence."""
        local = ":" + self._server_name
        senders = {e.sender for e in events if e.sender.endswith(local)}
        joiners = {
            e.state_key
            for e in events
            if e.type == "m.room.member"
            and e.membership == "join"
            and e.state_key is not None
            and e.state_key.endswith(local)
            and e.rejected_reason is None
        }
        if self.enabled and self.outbound is not None:
            room_server_to_joiners: dict[tuple[str, str], set[str]] = {}
            for event in events:
                if (
                    event.type == "m.room.member"
                    and event.membership == "join"
                    and event.state_key is not None
                    and not event.state_key.endswith(local)
                    and event.rejected_reason is None
                ):
                    key = (event.room_id, event.state_key.partition(":")[2])
                    room_server_to_joiners.setdefault(key, set()).add(event.state_key)
            for (room_id, server), remote_joiners in room_server_to_joiners.items():
                self.outbound.remote_joined(room_id, server, remote_joiners)
        try:
            for user_id in senders:
                await self.bump_active(user_id)
            for user_id in joiners:
                await self._announce(user_id)
        except Exception:
            # presence is best effort; the events are persisted whatever happens here
            logger.exception("Could not record presence for %s", sorted(senders | joiners))

    async def _announce(self, user_id: str) -> None:
        """Give the user's presence a new position, so that everyone now sharing a room
        with them gets it in their next sync: offline too, as Synapse sends a newly joined
        member's presence whatever it is (and clients then know it rather than guess)."""
        if not self.enabled:
            return
        await self._write(await self._current(user_id))

    async def receive_remote(self, state: PresenceState) -> None:
        """Another server's word on one of its users (checked by the caller: its user),
        stored and shown like ours when it changes what others see."""
        if not self.enabled:
            return
        await self._update(await self._current(state.user_id), state)

    async def states_of(self, user_ids: Collection[str]) -> list[PresenceState]:
        """The presence of each of `user_ids` (a room's members), in one query."""
        missing = [user_id for user_id in user_ids if user_id not in self._user_id_to_state]
        stored = {state.user_id: state for state in await self._store.get_many(missing)}
        return [
            self._user_id_to_state.get(user_id) or stored.get(user_id) or offline(user_id)
            for user_id in user_ids
        ]

    async def get_status(self, requester: str, user_id: str) -> dict[str, Any]:
        """GET /presence/{userId}/status"""
        if requester != user_id and not await self._shares_room(requester, user_id):
            raise MatrixError(403, "M_FORBIDDEN", "You are not allowed to see their presence")
        if not self.enabled:
            return {"presence": OFFLINE}
        return presence_content(await self._current(user_id), now_ms())

    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
        *,
        include_offline: bool = False,
    ) -> list[dict[str, Any]]:
        """m.presence events of the user and of users joined to one of `room_ids` whose
        presence changed in (from_pos, to_pos]. Read from position 0, users simply offline
        are left out unless `include_offline`."""
        if not self.enabled:
            return []
        changed = await self._store.get_changes_for_members(user_id, room_ids, from_pos, to_pos)
        now = now_ms()
        events = []
        for stored in changed:
            # the in-memory state has the freshest activity times
            state = self._user_id_to_state.get(stored.user_id, stored)
            if (
                from_pos == 0
                and not include_offline
                and state.state == OFFLINE
                and state.status_msg is None
            ):
                # an initial sync needs no news of people who are simply away
                continue
            events.append(
                {
                    "type": "m.presence",
                    "sender": state.user_id,
                    "content": presence_content(state, now),
                }
            )
        return events
