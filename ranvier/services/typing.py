"""Typing notifications (spec: client-server-api "Typing Notifications").

Typing is short-lived and never stored: each room's typing set lives in memory, entries
expire after the timeout the client gave, and positions in the typing stream come from an
in-memory counter. After a restart the counter starts again from 0; a sync token from before
carries a higher position, which is read as "from the start" so nobody misses a typist.

Users of other servers type here too (services/federation/typing_edus.py): their server
sends no timeout, so, as in Synapse, their typing lasts REMOTE_TIMEOUT_MS unless it says
again that they type (it does every 40 seconds) or that they stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.services.stream_notify import Notify

logger = logging.getLogger(__name__)

TYPING_STREAM = "typing"
# as Synapse: a client asking for longer gets two minutes
MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000
# as Synapse: how long another server's "is typing" holds without a word from it
REMOTE_TIMEOUT_MS = 60_000

# (room_id, user_id) -> whether the user is joined to the room now
JoinedCheck = Callable[[str, str], Awaitable[bool]]
# user_id -> None: the user did something (presence counts it as activity)
ActivityCallback = Callable[[str], Awaitable[None]]
# (room_id, user_id, typing): a user's typing started or stopped (for other servers)
TypingListener = Callable[[str, str, bool], None]


async def ignore_activity(user_id: str) -> None:
    pass


class TypingService:
    stream_name = TYPING_STREAM

    def __init__(
        self,
        is_joined: JoinedCheck,
        notify: Notify,
        on_activity: ActivityCallback = ignore_activity,
    ) -> None:
        self._is_joined = is_joined
        self._on_activity = on_activity
        self._notify = notify
        self._position = 0
        self._room_id_to_typists: dict[str, set[str]] = {}
        # the position at which each room's typing set last changed
        self._room_id_to_position: dict[str, int] = {}
        self._expiry_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        # told of every start and stop, whoever's; the federation part keeps its users'
        self.on_change: list[TypingListener] = []

    def current_position(self) -> int:
        return self._position

    async def set_typing(
        self,
        requester: str,
        user_id: str,
        room_id: str,
        *,
        typing: bool,
        timeout_ms: int | None,
    ) -> None:
        if requester != user_id:
            raise MatrixError(403, "M_FORBIDDEN", "Cannot set typing state for another user")
        if not await self._is_joined(room_id, user_id):
            raise MatrixError(403, "M_FORBIDDEN", "You are not joined to this room")
        if typing:
            await self._on_activity(user_id)
        self._apply(room_id, user_id, typing=typing, timeout_ms=timeout_ms)

    def receive_remote(self, room_id: str, user_id: str, *, typing: bool) -> None:
        """Another server's user typing or not (checked by the caller: a member of the
        room, of the server that said so)."""
        self._apply(room_id, user_id, typing=typing, timeout_ms=REMOTE_TIMEOUT_MS)

    def is_typing(self, room_id: str, user_id: str) -> bool:
        return user_id in self._room_id_to_typists.get(room_id, ())

    def _apply(self, room_id: str, user_id: str, *, typing: bool, timeout_ms: int | None) -> None:
        key = (room_id, user_id)
        timer = self._expiry_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if typing:
            timeout = min(
                timeout_ms if timeout_ms is not None else DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS
            )
            self._expiry_timers[key] = asyncio.get_running_loop().call_later(
                timeout / 1000, self._expire, room_id, user_id
            )
            typists = self._room_id_to_typists.setdefault(room_id, set())
            if user_id in typists:
                # a renewed timeout changes nothing a client sees
                return
            typists.add(user_id)
        else:
            typists = self._room_id_to_typists.get(room_id, set())
            if user_id not in typists:
                return
            typists.discard(user_id)
        self._changed(room_id, user_id, typing=typing)

    def _expire(self, room_id: str, user_id: str) -> None:
        self._expiry_timers.pop((room_id, user_id), None)
        typists = self._room_id_to_typists.get(room_id)
        if typists is not None and user_id in typists:
            typists.discard(user_id)
            self._changed(room_id, user_id, typing=False)

    def _changed(self, room_id: str, user_id: str, *, typing: bool) -> None:
        self._position += 1
        self._room_id_to_position[room_id] = self._position
        if not self._room_id_to_typists.get(room_id):
            self._room_id_to_typists.pop(room_id, None)
        self._notify(TYPING_STREAM, self._position, rooms=(room_id,))
        for listener in self.on_change:
            try:
                listener(room_id, user_id, typing)
            except Exception:
                # typing shown here whatever other servers miss
                logger.exception("Typing listener failed for %s in %s", user_id, room_id)

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """RoomEventSender callback: someone who leaves a room stops typing in it."""
        for event in events:
            if (
                event.type == "m.room.member"
                and event.state_key is not None
                and event.membership != "join"
                and event.state_key in self._room_id_to_typists.get(event.room_id, ())
            ):
                timer = self._expiry_timers.pop((event.room_id, event.state_key), None)
                if timer is not None:
                    timer.cancel()
                self._room_id_to_typists[event.room_id].discard(event.state_key)
                self._changed(event.room_id, event.state_key, typing=False)

    def changed_since(self, position: int) -> dict[str, list[str]]:
        """room_id -> who types there now, for the rooms whose typing set changed after
        `position` (application services are pushed these)."""
        return {
            room_id: self.typing_in(room_id)
            for room_id, changed_at in self._room_id_to_position.items()
            if changed_at > position
        }

    def typing_in(self, room_id: str) -> list[str]:
        return sorted(self._room_id_to_typists.get(room_id, ()))

    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
    ) -> dict[str, dict[str, Any]]:
        """{room_id: m.typing event} for the rooms whose typing set changed after from_pos;
        on an initial sync, the rooms where someone types."""
        if from_pos > self._position:
            # a token from before a restart
            from_pos = 0
        updates: dict[str, dict[str, Any]] = {}
        for room_id in room_ids:
            changed_at = self._room_id_to_position.get(room_id, 0)
            typists = self.typing_in(room_id)
            if from_pos == 0 and not typists:
                continue
            if from_pos < changed_at or (from_pos == 0 and typists):
                # the typing set as it is now: newer than to_pos at worst, never stale
                updates[room_id] = {"type": "m.typing", "content": {"user_ids": typists}}
        return updates

    def stop(self) -> None:
        for timer in self._expiry_timers.values():
            timer.cancel()
        self._expiry_timers.clear()
