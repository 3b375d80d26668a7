"""m.presence between servers (spec: server-server-api "Presence"), when presence is
enabled.

Our users' presence goes to every server sharing a room with them, keyed per user in the
outbound queue so only the newest state waits there: when it changes, again every
PING_INTERVAL_MS while they are not offline (so the other server, which gives up on a
silent user after 30 minutes, keeps them), and, when a server new to one of our rooms
joins it, our members' presence goes to that server so its user sees everyone at once
(SyTest: "New federated private chats get full presence information"; as Synapse, not
members long offline). Another server's word is taken only about its own users.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ranvier.clock import now_ms
from ranvier.services.federation.edu_outbox import EduOutbox, server_of
from ranvier.services.presence import OFFLINE, ONLINE, STATES, JoinedRooms, PresenceService
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.presence import PresenceState

logger = logging.getLogger(__name__)

PRESENCE_EDU = "m.presence"
# as Synapse: well inside the 30 minutes a receiving server waits
PING_INTERVAL_MS = 25 * 60 * 1000
# as Synapse: a server new to a room is not told of members offline and idle this long
STALE_OFFLINE_MS = 7 * 24 * 60 * 60 * 1000


def worth_telling(state: PresenceState, now: int) -> bool:
    """Whether a server new to a room should hear of this member: not if they are simply
    offline and have been for a week (or ever, the default state)."""
    return (
        state.state != OFFLINE
        or state.status_msg is not None
        or now - state.last_active_ts < STALE_OFFLINE_MS
    )


def presence_edu_item(state: PresenceState, now: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "user_id": state.user_id,
        "presence": state.state,
        "last_active_ago": max(0, now - state.last_active_ts),
        "currently_active": state.currently_active,
    }
    if state.status_msg is not None:
        item["status_msg"] = state.status_msg
    return item


def parse_presence_item(item: Any, now: int) -> PresenceState | None:
    """A `push` entry as a PresenceState, or None if malformed. `last_user_sync_ts` is
    when its server last spoke of the user (now)."""
    if not isinstance(item, Mapping):
        return None
    user_id = item.get("user_id")
    presence = item.get("presence")
    if not isinstance(user_id, str) or presence not in STATES:
        return None
    ago = item.get("last_active_ago")
    status_msg = item.get("status_msg")
    currently_active = item.get("currently_active")
    last_active_ts = now - ago if type(ago) is int and 0 <= ago <= now else 0
    return PresenceState(
        user_id=user_id,
        state=presence,
        status_msg=status_msg if isinstance(status_msg, str) else None,
        last_active_ts=last_active_ts,
        last_user_sync_ts=now,
        currently_active=presence == ONLINE and currently_active is True,
    )


class PresenceFederation:
    """PresenceService's outbound side (PresenceOutbound), and the m.presence handler."""

    def __init__(
        self,
        presence: PresenceService,
        joined_rooms: JoinedRooms,
        database: Database,
        outbox: EduOutbox | None,
    ) -> None:
        """`outbox` None: nothing is sent (send_federation off), inbound still counts."""
        self._presence = presence
        self._joined_rooms = joined_rooms
        self._db = database
        self._outbox = outbox
        # when each of our users' presence last went out
        self._user_id_to_sent_at: dict[str, int] = {}
        if outbox is not None:
            presence.outbound = self

    async def on_edu(self, origin: str, content: Mapping[str, Any]) -> None:
        """The m.presence EDU handler."""
        if not self._presence.enabled:
            return
        push = content.get("push")
        if not isinstance(push, list):
            logger.info("Dropping a malformed m.presence EDU from %s", origin)
            return
        now = now_ms()
        for item in push:
            state = parse_presence_item(item, now)
            if state is None:
                logger.info("Dropping a malformed presence update from %s", origin)
            elif server_of(state.user_id) != origin:
                logger.info("Dropping presence from %s of %s, not its user", origin, state.user_id)
            else:
                await self._presence.receive_remote(state)

    # -- PresenceOutbound ------------------------------------------------------------------

    def changed(self, state: PresenceState) -> None:
        outbox = self._outbox
        assert outbox is not None
        self._user_id_to_sent_at[state.user_id] = now_ms()
        if state.state == OFFLINE:
            self._user_id_to_sent_at.pop(state.user_id, None)

        async def send() -> None:
            servers = await outbox.servers_in(await self._joined_rooms(state.user_id))
            self._send(servers, state)

        outbox.later(send)

    def unchanged(self, state: PresenceState, now: int) -> None:
        sent_at = self._user_id_to_sent_at.get(state.user_id)
        if sent_at is None:
            # not sent by this process (from before a restart): from now on it counts
            self._user_id_to_sent_at[state.user_id] = now
        elif now - sent_at >= PING_INTERVAL_MS:
            self.changed(state)

    def remote_joined(self, room_id: str, server: str, joiners: set[str]) -> None:
        outbox = self._outbox
        assert outbox is not None

        async def send() -> None:
            members = await state_store.get_members(self._db, room_id)
            if any(server_of(user_id) == server and user_id not in joiners for user_id in members):
                # it was in the room already, and heard of our members as they changed
                return
            ours = [user_id for user_id in members if outbox.is_ours(user_id)]
            now = now_ms()
            for state in await self._presence.states_of(ours):
                if worth_telling(state, now):
                    self._send((server,), state)

        outbox.later(send)

    def _send(self, servers: set[str] | tuple[str, ...], state: PresenceState) -> None:
        assert self._outbox is not None
        content = {"push": [presence_edu_item(state, now_ms())]}
        self._outbox.send(servers, PRESENCE_EDU, content, key=(PRESENCE_EDU, state.user_id))
