"""The admin's statistics (Synapse's statistics admin API): media uploaded per user, and
the rooms that take the most space in the database."""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.storage.statistics import StatisticsQueries, UserMediaQuery

# as Synapse: the ten largest rooms
LARGEST_ROOMS = 10


class AdminStatistics:
    def __init__(self, queries: StatisticsQueries) -> None:
        self._queries = queries

    async def users_media(self, query: UserMediaQuery) -> dict[str, Any]:
        """GET /_synapse/admin/v1/statistics/users/media"""
        if query.until_ts is not None and query.until_ts <= query.from_ts:
            raise MatrixError(
                400, "M_INVALID_PARAM", "Query parameter until_ts must be greater than from_ts."
            )
        found, total = await self._queries.users_media(query)
        body: dict[str, Any] = {
            "users": [
                {
                    "user_id": usage.user_id,
                    "displayname": usage.displayname,
                    "media_count": usage.media_count,
                    "media_length": usage.media_length,
                }
                for usage in found
            ],
            "total": total,
        }
        if query.start + query.limit < total:
            body["next_token"] = query.start + len(found)
        return body

    async def largest_rooms(self) -> dict[str, Any]:
        """GET /_synapse/admin/v1/statistics/database/rooms"""
        sizes = await self._queries.largest_rooms(LARGEST_ROOMS)
        return {
            "rooms": [{"room_id": s.room_id, "estimated_size": s.estimated_size} for s in sizes]
        }
