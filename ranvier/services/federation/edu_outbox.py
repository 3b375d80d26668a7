"""Where typing, receipts and presence of our users leave for other servers: the EDUs go
into the outbound queue (federation/queue.py) for the servers with a member joined to the
rooms concerned, looked up in the background so that neither a client's request nor a
timer waits on the database for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from typing import Any, Protocol

from ranvier.storage.database import Database
from ranvier.storage.memberships import get_joined_servers

logger = logging.getLogger(__name__)


class EduQueue(Protocol):
    """The outbound transaction queue (FederationSender)."""

    def send_edu(
        self,
        destination: str,
        edu_type: str,
        content: Mapping[str, Any],
        *,
        key: Hashable | None = None,
    ) -> None: ...

    async def joined_servers(self, room_ids: set[str]) -> dict[str, frozenset[str]]: ...


# room_ids -> {room_id: the servers with a member joined to it now}
JoinedServers = Callable[[set[str]], Awaitable[Mapping[str, Collection[str]]]]
# (server_name, room_id) -> whether the room's server ACL lets the server in
ServerAllowed = Callable[[str, str], Awaitable[bool]]


def joined_servers_lookup(database: Database, queue: EduQueue | None) -> JoinedServers:
    """The outbound queue's cached answer when it runs, the database's otherwise."""
    if queue is not None:
        return queue.joined_servers

    async def lookup(room_ids: set[str]) -> Mapping[str, Collection[str]]:
        return await get_joined_servers(database, room_ids)

    return lookup


def server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


async def both_in_room(joined_servers: JoinedServers, room_id: str, ours: str, theirs: str) -> bool:
    """Whether we and `theirs` both have a member joined to the room now: an EDU about a
    room we left, or from a server that left it, is dropped."""
    servers = (await joined_servers({room_id})).get(room_id, ())
    return ours in servers and theirs in servers


class EduOutbox:
    def __init__(self, queue: EduQueue, server_name: str) -> None:
        self._queue = queue
        self.server_name = server_name
        # one send at a time, in the order asked: a "stopped typing" must not overtake the
        # "started" before it and leave the other server showing a typist
        self._order = asyncio.Lock()
        # held so they are not collected while they run; each is short (a lookup, then
        # queueing), so shutting down lets them finish or be dropped with the loop
        self._tasks: set[asyncio.Task[None]] = set()

    def is_ours(self, user_id: str) -> bool:
        return server_of(user_id) == self.server_name

    def later(self, send: Callable[[], Awaitable[None]]) -> None:
        """Run `send` in the background, after the sends asked for before it."""

        async def run() -> None:
            async with self._order:
                try:
                    await send()
                except Exception:
                    # ephemeral: the other servers miss this one, the next change still goes
                    logger.exception("Could not queue an EDU for other servers")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def servers_in(self, room_ids: Collection[str]) -> set[str]:
        """The other servers with a member joined to any of the rooms."""
        if not room_ids:
            return set()
        found = await self._queue.joined_servers(set(room_ids))
        servers: set[str] = set().union(*found.values())
        servers.discard(self.server_name)
        return servers

    def send(
        self,
        destinations: Collection[str],
        edu_type: str,
        content: Mapping[str, Any],
        *,
        key: Hashable | None = None,
    ) -> None:
        for destination in destinations:
            self._queue.send_edu(destination, edu_type, content, key=key)
