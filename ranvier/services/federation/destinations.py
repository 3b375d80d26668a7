"""Synapse's federation destinations admin API: the servers this one has talked to, their
backoff, the rooms shared with them, and ending a backoff early."""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.federation.backoff import Backoff
from ranvier.storage.destinations import DestinationOrder, DestinationStore

UNKNOWN_DESTINATION = "Unknown destination"


class DestinationAdminService:
    def __init__(self, store: DestinationStore, backoff: Backoff) -> None:
        self._store = store
        self._backoff = backoff

    async def list_destinations(
        self,
        *,
        start: int,
        limit: int,
        order_by: DestinationOrder,
        descending: bool,
        name_filter: str | None,
    ) -> dict[str, Any]:
        rows, total = await self._store.list_destinations(
            start=start,
            limit=limit,
            order_by=order_by,
            descending=descending,
            name_filter=name_filter,
        )
        body: dict[str, Any] = {"destinations": [row.as_json() for row in rows], "total": total}
        if start + len(rows) < total:
            body["next_token"] = str(start + len(rows))
        return body

    async def get_destination(self, destination: str) -> dict[str, Any]:
        row = await self._store.get(destination)
        if row is None:
            raise MatrixError(404, "M_NOT_FOUND", UNKNOWN_DESTINATION)
        return row.as_json()

    async def rooms(
        self, destination: str, *, start: int, limit: int, descending: bool
    ) -> dict[str, Any]:
        if await self._store.get(destination) is None:
            raise MatrixError(404, "M_NOT_FOUND", UNKNOWN_DESTINATION)
        rooms, total = await self._store.rooms_shared_with(
            destination, start=start, limit=limit, descending=descending
        )
        body: dict[str, Any] = {
            "rooms": [
                {"room_id": room.room_id, "stream_ordering": room.stream_ordering} for room in rooms
            ],
            "total": total,
        }
        if start + len(rooms) < total:
            body["next_token"] = str(start + len(rooms))
        return body

    async def reset_connection(self, destination: str) -> None:
        """End `destination`'s backoff so the next request goes out at once."""
        row = await self._store.get(destination)
        if row is None:
            raise MatrixError(404, "M_NOT_FOUND", UNKNOWN_DESTINATION)
        if not row.retry_last_ts:
            # as Synapse: nothing to reset
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "The retry timing does not need to be reset for this destination.",
            )
        await self._store.clear_retry_timings(destination)
        self._backoff.forget(destination)
