"""Redacting everything a user sent (Synapse's admin API "Redact all the events of a
user"), for cleaning up after a spammer. It runs in the background; its status is kept in
memory, as Synapse keeps it for a while: a restart forgets it, and a redaction it cut short
can be started again (events already redacted are skipped).

A local user's events are redacted as that user (anyone may redact their own); another
server's user's events as the admin who asked, who needs the power to redact in the room.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from ranvier.errors import MatrixError
from ranvier.requester import UserRequester
from ranvier.services.rooms.client_redactions import RedactionService
from ranvier.storage.user_events import UserEventQueries
from ranvier.storage.users import UserStore

logger = logging.getLogger(__name__)

# as Synapse: how many of the user's events are redacted per room unless told otherwise
DEFAULT_LIMIT = 1000


def _acting_as(user_id: str) -> UserRequester:
    return UserRequester(
        user_id=user_id, device_id=None, is_guest=False, is_admin=False, access_token_id=None
    )


@dataclass
class RedactionTask:
    status: str = "scheduled"
    # event ID -> why it could not be redacted
    failed_redactions: dict[str, str] = field(default_factory=dict)


class UserRedactions:
    def __init__(
        self,
        server_name: str,
        users: UserStore,
        queries: UserEventQueries,
        redacting: RedactionService,
    ) -> None:
        self._server_name = server_name
        self._users = users
        self._queries = queries
        self._redacting = redacting
        self._id_to_task: dict[str, RedactionTask] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def start(
        self,
        admin_id: str,
        user_id: str,
        room_ids: list[str],
        reason: str | None,
        limit: int,
    ) -> str:
        """POST /_synapse/admin/v1/user/{user_id}/redact; the redaction's ID."""
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")
        if server == self._server_name and await self._users.get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")
        if limit <= 0:
            raise MatrixError(400, "M_INVALID_PARAM", "'limit' must be a positive integer")
        for room_id in room_ids:
            if not room_id.startswith("!"):
                raise MatrixError(400, "M_INVALID_PARAM", f"{room_id!r} is not a room ID")
        redact_id = "".join(secrets.choice(string.ascii_letters) for _ in range(16))
        task = RedactionTask()
        self._id_to_task[redact_id] = task
        actor = user_id if server == self._server_name else admin_id
        running = asyncio.create_task(
            self._run(task, actor, user_id, room_ids, reason, limit, redact_id)
        )
        self._running.add(running)
        running.add_done_callback(self._running.discard)
        return redact_id

    def status(self, redact_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/user/redact_status/{redact_id}"""
        task = self._id_to_task.get(redact_id)
        if task is None:
            raise MatrixError(404, "M_NOT_FOUND", "redact id not found")
        return {"status": task.status, "failed_redactions": dict(task.failed_redactions)}

    async def _run(
        self,
        task: RedactionTask,
        actor: str,
        user_id: str,
        room_ids: list[str],
        reason: str | None,
        limit: int,
        redact_id: str,
    ) -> None:
        task.status = "active"
        try:
            rooms = room_ids or await self._queries.rooms_with_events_by(user_id)
            for room_id in rooms:
                for event_id in await self._queries.unredacted_events(user_id, room_id, limit):
                    try:
                        await self._redacting.redact(
                            _acting_as(actor), room_id, event_id, f"{redact_id}-{event_id}", reason
                        )
                    except MatrixError as exc:
                        task.failed_redactions[event_id] = exc.error
        except Exception:
            logger.exception("Redacting the events of %s failed", user_id)
            task.status = "failed"
            return
        task.status = "completed"

    async def stop(self) -> None:
        """Shutdown: stop redacting (what was redacted stays; the rest can be redone)."""
        for running in list(self._running):
            running.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
