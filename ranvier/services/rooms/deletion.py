"""Deleting rooms (Synapse's Delete Room API): shut the room down, then purge it.

Shutting down removes every local user from the room through the normal event pipeline (a
leave event each, so their clients see it), optionally blocks the room, and moves the
room's local aliases to a new room (created by `new_room_user_id` with an explanatory
message, where the removed users are joined) or deletes them. Purging then removes every
row about the room. Version 2 of the API runs this in the background and records its
progress in `room_deletions`, so its status can be asked for until a day after it ended.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from dataclasses import dataclass
from typing import Any

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.requester import UserRequester
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.room_creation import CreateRoomRequest, RoomCreationService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage.room_admin import RoomAdminStore, RoomDeletionRecord

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "shutting_down"
PURGING = "purging"
COMPLETE = "complete"
FAILED = "failed"
UNFINISHED = (SHUTTING_DOWN, PURGING)

DEFAULT_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "The room you were in has been shut down by the administrators of this server "
    "because it broke the server's rules."
)
# as Synapse: the status of a deletion can be read for a day after it ended
STATUS_RETENTION_MS = 24 * 60 * 60 * 1000
# as Synapse: people moved to the new room can read it but not speak
NEW_ROOM_USERS_DEFAULT = -10
# memberships a shutdown ends: joined, invited and knocking local users
ENDED_MEMBERSHIPS = ("join", "invite", "knock")


@dataclass(frozen=True)
class DeleteRoomRequest:
    room_id: str
    requester_user_id: str
    new_room_user_id: str | None = None
    room_name: str | None = None
    message: str | None = None
    block: bool = False
    purge: bool = True
    force_purge: bool = False


@dataclass
class ShutdownResult:
    kicked_users: list[str]
    failed_to_kick_users: list[str]
    local_aliases: list[str]
    new_room_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kicked_users": self.kicked_users,
            "failed_to_kick_users": self.failed_to_kick_users,
            "local_aliases": self.local_aliases,
            "new_room_id": self.new_room_id,
        }


class PurgeRefused(Exception):
    pass


def _acting_as(user_id: str) -> UserRequester:
    # the server acts for its users here; no token, device or rate limit is involved
    return UserRequester(
        user_id=user_id, device_id=None, is_guest=False, is_admin=False, access_token_id=None
    )


def _new_delete_id() -> str:
    alphabet = string.ascii_letters
    return "".join(secrets.choice(alphabet) for _ in range(16))


def deletion_status(record: RoomDeletionRecord) -> dict[str, Any]:
    status: dict[str, Any] = {
        "delete_id": record.delete_id,
        "room_id": record.room_id,
        "status": record.status,
        "shutdown_room": ShutdownResult(
            record.kicked_users,
            record.failed_to_kick_users,
            record.local_aliases,
            record.new_room_id,
        ).as_json(),
    }
    if record.error is not None:
        status["error"] = record.error
    return status


class RoomDeletionService:
    def __init__(
        self,
        store: RoomAdminStore,
        sender: RoomEventSender,
        creation: RoomCreationService,
        membership: MembershipService,
    ) -> None:
        self._store = store
        self._sender = sender
        self._creation = creation
        self._membership = membership
        self._room_ids_in_progress: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def recover(self) -> None:
        """At start-up: deletions a stopped process left running did not finish."""
        count = await self._store.fail_unfinished_deletions(
            UNFINISHED, "The server stopped before the deletion finished; start it again"
        )
        if count:
            logger.warning("%d room deletions were interrupted by a restart", count)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- starting --------------------------------------------------------------------------

    async def start(self, request: DeleteRoomRequest) -> str:
        """DELETE /_synapse/admin/v2/rooms/{room_id}: returns the delete ID at once."""
        if not await self._store.room_exists(request.room_id):
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {request.room_id}")
        self._claim(request.room_id)
        delete_id = _new_delete_id()
        try:
            await self._store.insert_deletion(
                delete_id, request.room_id, request.requester_user_id, SHUTTING_DOWN
            )
        except BaseException:
            self._room_ids_in_progress.discard(request.room_id)
            raise
        task = asyncio.create_task(self._run(delete_id, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delete_id

    async def delete_now(self, request: DeleteRoomRequest) -> dict[str, Any]:
        """DELETE /_synapse/admin/v1/rooms/{room_id}: the same work, answered when done."""
        if not await self._store.room_exists(request.room_id):
            if not request.block:
                raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {request.room_id}")
            # as Synapse: version 1 may block a room this server does not know yet
            await self._store.block(request.room_id, request.requester_user_id)
            return ShutdownResult([], [], []).as_json()
        self._claim(request.room_id)
        delete_id = _new_delete_id()
        try:
            await self._store.insert_deletion(
                delete_id, request.room_id, request.requester_user_id, SHUTTING_DOWN
            )
        except BaseException:
            self._room_ids_in_progress.discard(request.room_id)
            raise
        await self._run(delete_id, request)
        record = await self._store.get_deletion(delete_id)
        assert record is not None
        if record.status == FAILED:
            raise MatrixError(400, "M_UNKNOWN", record.error or "Deleting the room failed")
        return deletion_status(record)["shutdown_room"]  # type: ignore[no-any-return]

    async def purge_forgotten(self, room_id: str) -> bool:
        """Purge a room every local user has forgotten (forgotten_room_retention_period):
        no shutdown, as nobody here is in it; False if a deletion of it is running or a
        local user is joined after all."""
        if room_id in self._room_ids_in_progress:
            return False
        self._room_ids_in_progress.add(room_id)
        try:
            await self._purge(room_id, force=False)
        except PurgeRefused:
            return False
        finally:
            self._room_ids_in_progress.discard(room_id)
        return True

    def _claim(self, room_id: str) -> None:
        if room_id in self._room_ids_in_progress:
            raise MatrixError(400, "M_UNKNOWN", f"The deletion of {room_id} is already running")
        self._room_ids_in_progress.add(room_id)

    # -- status ----------------------------------------------------------------------------

    async def status_by_room(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v2/rooms/{room_id}/delete_status"""
        records = await self._store.get_deletions_for_room(room_id, now_ms() - STATUS_RETENTION_MS)
        if not records:
            raise MatrixError(404, "M_NOT_FOUND", f"No deletion of {room_id} found")
        return {"results": [deletion_status(record) for record in records]}

    async def status_by_id(self, delete_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v2/rooms/delete_status/{delete_id}"""
        record = await self._store.get_deletion(delete_id)
        if record is None or (
            record.finished_ts is not None and record.finished_ts < now_ms() - STATUS_RETENTION_MS
        ):
            raise MatrixError(404, "M_NOT_FOUND", f"Deletion {delete_id} not found")
        return deletion_status(record)

    # -- the work --------------------------------------------------------------------------

    async def _run(self, delete_id: str, request: DeleteRoomRequest) -> None:
        room_id = request.room_id
        try:
            await self._shutdown(delete_id, request)
            if request.purge:
                await self._store.update_deletion(delete_id, status=PURGING)
                await self._purge(room_id, force=request.force_purge)
            await self._store.update_deletion(delete_id, status=COMPLETE, finished=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, (MatrixError, PurgeRefused)):
                logger.exception("Deleting room %s failed", room_id)
            error = exc.error if isinstance(exc, MatrixError) else str(exc)
            await self._store.update_deletion(delete_id, status=FAILED, error=error, finished=True)
        finally:
            self._room_ids_in_progress.discard(room_id)

    async def _shutdown(self, delete_id: str, request: DeleteRoomRequest) -> None:
        room_id = request.room_id
        if request.block:
            await self._store.block(room_id, request.requester_user_id)
        new_room_id = None
        if request.new_room_user_id is not None:
            new_room_id = await self._create_notice_room(request)
            await self._store.update_deletion(delete_id, new_room_id=new_room_id)

        result = ShutdownResult([], [], [], new_room_id)
        for user_id in await self._store.get_local_members(room_id, ENDED_MEMBERSHIPS):
            try:
                await self._membership.leave(_acting_as(user_id), room_id)
            except Exception as exc:
                logger.warning("Could not remove %s from %s: %s", user_id, room_id, exc)
                result.failed_to_kick_users.append(user_id)
                continue
            result.kicked_users.append(user_id)
            try:
                # as Synapse: the room leaves the users' lists of rooms too
                await self._membership.forget(_acting_as(user_id), room_id)
            except Exception as exc:
                logger.warning("Could not forget %s for %s: %s", room_id, user_id, exc)
            if new_room_id is not None:
                try:
                    await self._membership.join(_acting_as(user_id), new_room_id)
                except Exception as exc:
                    logger.warning("Could not move %s to %s: %s", user_id, new_room_id, exc)
            await self._store.update_deletion(
                delete_id,
                kicked_users=result.kicked_users,
                failed_to_kick_users=result.failed_to_kick_users,
            )

        result.local_aliases = await self._store.get_aliases(room_id)
        await self._store.move_aliases(
            room_id, new_room_id, request.new_room_user_id or request.requester_user_id
        )
        await self._store.update_deletion(
            delete_id,
            kicked_users=result.kicked_users,
            failed_to_kick_users=result.failed_to_kick_users,
            local_aliases=result.local_aliases,
        )

    async def _create_notice_room(self, request: DeleteRoomRequest) -> str:
        assert request.new_room_user_id is not None
        creator = _acting_as(request.new_room_user_id)
        new_room_id = await self._creation.create_room(
            creator,
            CreateRoomRequest(
                preset="public_chat",
                name=request.room_name or DEFAULT_ROOM_NAME,
                power_level_content_override={"users_default": NEW_ROOM_USERS_DEFAULT},
            ),
        )
        await self._sender.send(
            EventTemplate(
                "m.room.message",
                request.new_room_user_id,
                {"msgtype": "m.text", "body": request.message or DEFAULT_MESSAGE},
                new_room_id,
            )
        )
        return new_room_id

    async def _purge(self, room_id: str, *, force: bool) -> None:
        if not force and await self._store.count_local_joined(room_id):
            raise PurgeRefused(
                "Local users are still joined to the room; purge with force_purge to remove "
                "the room anyway"
            )
        await self._store.purge_room(room_id)
        self._sender.forget_room(room_id)
