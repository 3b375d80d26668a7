"""m.typing between servers (spec: server-server-api "Typing Notifications").

Our users' typing goes to the other servers in the room, keyed per user and room in the
outbound queue so only the newest state waits there; while a user keeps typing it is said
again every KEEPALIVE_SECONDS, before the other server's REMOTE_TIMEOUT_MS (a minute, as
Synapse) runs out. Another server's word is taken only about its own users who are joined
to a room we are in, and whose server ACL does not deny it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ranvier.services.federation.edu_outbox import (
    EduOutbox,
    JoinedServers,
    ServerAllowed,
    both_in_room,
    server_of,
)
from ranvier.services.typing import JoinedCheck, TypingService

logger = logging.getLogger(__name__)

TYPING_EDU = "m.typing"
# as Synapse: well inside the minute a receiving server waits
KEEPALIVE_SECONDS = 40.0


class TypingFederation:
    def __init__(
        self,
        typing: TypingService,
        is_joined: JoinedCheck,
        joined_servers: JoinedServers,
        server_allowed: ServerAllowed,
        server_name: str,
        outbox: EduOutbox | None,
    ) -> None:
        """`outbox` None: nothing is sent (send_federation off), inbound still counts."""
        self._typing = typing
        self._server_allowed = server_allowed
        self._is_joined = is_joined
        self._joined_servers = joined_servers
        self._server_name = server_name
        self._outbox = outbox
        self._keepalives: dict[tuple[str, str], asyncio.TimerHandle] = {}
        if outbox is not None:
            typing.on_change.append(self.on_change)

    async def on_edu(self, origin: str, content: Mapping[str, Any]) -> None:
        """The m.typing EDU handler."""
        room_id = content.get("room_id")
        user_id = content.get("user_id")
        typing = content.get("typing")
        if not (isinstance(room_id, str) and isinstance(user_id, str) and type(typing) is bool):
            logger.info("Dropping a malformed m.typing EDU from %s", origin)
            return
        if server_of(user_id) != origin:
            logger.info("Dropping m.typing from %s about %s, not its user", origin, user_id)
            return
        if not await self._server_allowed(origin, room_id):
            logger.info("Dropping m.typing from %s: denied by %s's server ACL", origin, room_id)
            return
        if not await both_in_room(
            self._joined_servers, room_id, self._server_name, origin
        ) or not await self._is_joined(room_id, user_id):
            logger.info("Dropping m.typing from %s: %s not joined to %s", origin, user_id, room_id)
            return
        self._typing.receive_remote(room_id, user_id, typing=typing)

    def on_change(self, room_id: str, user_id: str, typing: bool) -> None:
        """TypingService listener: our users' starts and stops go out."""
        assert self._outbox is not None
        if not self._outbox.is_ours(user_id):
            return
        key = (room_id, user_id)
        keepalive = self._keepalives.pop(key, None)
        if keepalive is not None:
            keepalive.cancel()
        self._send(room_id, user_id, typing=typing)
        if typing:
            self._schedule_keepalive(room_id, user_id)

    def _schedule_keepalive(self, room_id: str, user_id: str) -> None:
        self._keepalives[(room_id, user_id)] = asyncio.get_running_loop().call_later(
            KEEPALIVE_SECONDS, self._keep_alive, room_id, user_id
        )

    def _keep_alive(self, room_id: str, user_id: str) -> None:
        self._keepalives.pop((room_id, user_id), None)
        if self._typing.is_typing(room_id, user_id):
            self._send(room_id, user_id, typing=True)
            self._schedule_keepalive(room_id, user_id)

    def _send(self, room_id: str, user_id: str, *, typing: bool) -> None:
        outbox = self._outbox
        assert outbox is not None
        content = {"room_id": room_id, "user_id": user_id, "typing": typing}

        async def send() -> None:
            servers = await outbox.servers_in((room_id,))
            outbox.send(servers, TYPING_EDU, content, key=(TYPING_EDU, room_id, user_id))

        outbox.later(send)

    def stop(self) -> None:
        for keepalive in self._keepalives.values():
            keepalive.cancel()
        self._keepalives.clear()
