"""Purging a room's history before an event or a time (Synapse's Purge History API).

The purge runs in the background, a batch of events per transaction (see
`storage/history_purge.py` for what happens to each event); its status is kept in memory,
as Synapse keeps it, for a day after it ended: a restart forgets it, and a purge the
restart interrupted is left part done (run it again to finish it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from dataclasses import dataclass

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage.history_purge import HistoryPurgeStore, PurgePoint

logger = logging.getLogger(__name__)

ACTIVE = "active"
COMPLETE = "complete"
FAILED = "failed"
# as Synapse: a purge's status can be read for a day after it ended
STATUS_RETENTION_MS = 24 * 60 * 60 * 1000
BATCH_SIZE = 500


@dataclass
class PurgeStatus:
    room_id: str
    status: str = ACTIVE
    error: str | None = None
    finished_ms: int | None = None

    def as_json(self) -> dict[str, str]:
        body = {"status": self.status}
        if self.error is not None:
            body["error"] = self.error
        return body


def _new_purge_id() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(16))


class HistoryPurgeService:
    def __init__(self, store: HistoryPurgeStore, loader: EventLoader) -> None:
        self._store = store
        self._loader = loader
        self._purge_id_to_status: dict[str, PurgeStatus] = {}
        self._room_ids_in_progress: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def start(
        self,
        room_id: str,
        *,
        event_id: str | None,
        ts: int | None,
        delete_local_events: bool,
    ) -> str:
        """POST /_synapse/admin/v1/purge_history/{room_id}[/{event_id}]: the purge ID."""
        if event_id is None and ts is None:
            raise MatrixError(400, "M_BAD_JSON", "Give purge_up_to_event_id or purge_up_to_ts")
        if not await self._store.room_exists(room_id):
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        point = await self._point(room_id, event_id, ts)
        extremity_depth = await self._store.max_extremity_depth(room_id)
        if extremity_depth is not None and extremity_depth < point.depth:
            # as Synapse: a room needs some history to send its next event after
            raise MatrixError(
                400, "M_UNKNOWN", "The purge point is later than the room's latest events"
            )
        if room_id in self._room_ids_in_progress:
            raise MatrixError(400, "M_UNKNOWN", f"History purge already in progress for {room_id}")
        self._forget_old_statuses()
        purge_id = _new_purge_id()
        self._room_ids_in_progress.add(room_id)
        status = self._purge_id_to_status[purge_id] = PurgeStatus(room_id)
        task = asyncio.create_task(self._run(point, status, delete_local_events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return purge_id

    async def purge_before(self, room_id: str, ts: int) -> bool:
        """Purge the room's events received before `ts`, local ones too, and wait for it
        (retention's purge jobs); False if there was nothing to purge up to, or an
        admin's purge of the room is running (the next job run does it)."""
        if room_id in self._room_ids_in_progress:
            return False
        point = await self._store.point_at_ts(room_id, ts)
        if point is None or room_id in self._room_ids_in_progress:
            return False
        self._room_ids_in_progress.add(room_id)
        await self._run(point, PurgeStatus(room_id), delete_local_events=True)
        return True

    def status(self, purge_id: str) -> dict[str, str]:
        """GET /_synapse/admin/v1/purge_history_status/{purge_id}"""
        self._forget_old_statuses()
        status = self._purge_id_to_status.get(purge_id)
        if status is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown purge ID {purge_id}")
        return status.as_json()

    async def _point(self, room_id: str, event_id: str | None, ts: int | None) -> PurgePoint:
        if event_id is not None:
            point = await self._store.point_at_event(event_id)
            if point is None:
                raise MatrixError(404, "M_NOT_FOUND", f"Unknown event {event_id}")
            if point.room_id != room_id:
                raise MatrixError(400, "M_UNKNOWN", f"Event {event_id} is not in room {room_id}")
            return point
        assert ts is not None
        point = await self._store.point_at_ts(room_id, ts)
        if point is None:
            raise MatrixError(404, "M_NOT_FOUND", "There is no event to be purged")
        return point

    async def _run(self, point: PurgePoint, status: PurgeStatus, delete_local_events: bool) -> None:
        deleted = kept = 0
        try:
            while True:
                batch = await self._store.purge_batch(
                    point, delete_local_events=delete_local_events, limit=BATCH_SIZE
                )
                if not batch.deleted and not batch.kept_as_outliers:
                    break
                self._loader.forget(batch.deleted)
                deleted += len(batch.deleted)
                kept += len(batch.kept_as_outliers)
            status.status = COMPLETE
            logger.info(
                "Purged the history of %s before %s: %d events deleted, %d kept as outliers",
                point.room_id,
                point.event_id,
                deleted,
                kept,
            )
        except Exception:
            logger.exception("Purging the history of %s failed", point.room_id)
            status.status = FAILED
            status.error = "The purge failed; the server's log says why. Start it again."
        finally:
            status.finished_ms = now_ms()
            self._room_ids_in_progress.discard(point.room_id)

    def _forget_old_statuses(self) -> None:
        oldest = now_ms() - STATUS_RETENTION_MS
        for purge_id, status in list(self._purge_id_to_status.items()):
            if status.finished_ms is not None and status.finished_ms < oldest:
                del self._purge_id_to_status[purge_id]
