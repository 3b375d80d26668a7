"""Filters (spec: client-server-api "Filtering"): upload and download by ID.

A filter is validated against the spec's definition (ranvier.protocol.filters) before it is
stored; the stored JSON is what the client sent, keys we do not know included, with the
timeline limit capped at `filter_timeline_limit` as Synapse does.
"""

from __future__ import annotations

from typing import Any

import orjson

from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError, bad_json
from ranvier.protocol.filters import Filter, FilterError, parse_filter
from ranvier.protocol.json_limits import JSONLimitError, check_json_limits
from ranvier.storage.filters import FilterStore

# filter IDs are stored as 64-bit integers; anything else names no filter
_MAX_FILTER_ID = 2**63 - 1


class FilterService:
    def __init__(self, config: HomeserverConfig, store: FilterStore) -> None:
        self._config = config
        self._store = store

    def _check_owner(self, requester: str, user_id: str, action: str) -> None:
        if requester != user_id:
            raise MatrixError(403, "M_FORBIDDEN", f"Cannot {action} filters for other users")
        if user_id.partition(":")[2] != self._config.server_name:
            raise MatrixError(403, "M_FORBIDDEN", f"Can only {action} filters for local users")

    def _capped(self, body: dict[str, Any]) -> dict[str, Any]:
        timeline = (body.get("room") or {}).get("timeline") or {}
        limit = timeline.get("limit")
        if isinstance(limit, int) and limit > self._config.filter_timeline_limit:
            timeline = {**timeline, "limit": self._config.filter_timeline_limit}
            body = {**body, "room": {**body["room"], "timeline": timeline}}
        return body

    def validate(self, body: object) -> Filter:
        """The filter, or 400 M_BAD_JSON naming what is wrong (also for inline filters)."""
        try:
            return parse_filter(body)
        except FilterError as exc:
            raise bad_json(f"Invalid filter: {exc}") from None

    async def create(self, requester: str, user_id: str, body: dict[str, Any]) -> str:
        self._check_owner(requester, user_id, "create")
        self.validate(body)
        filter_id = await self._store.add_filter(user_id, self._capped(body))
        return str(filter_id)

    async def get(self, requester: str, user_id: str, filter_id: str) -> dict[str, Any]:
        self._check_owner(requester, user_id, "get")
        not_found = MatrixError(404, "M_NOT_FOUND", "No such filter")
        # IDs we hand out are decimal numbers; anything else cannot name a filter
        if not filter_id.isascii() or not filter_id.isdigit():
            raise not_found
        number = int(filter_id)
        if number > _MAX_FILTER_ID:
            raise not_found
        stored = await self._store.get_filter(user_id, number)
        if stored is None:
            raise not_found
        return stored

    async def load(self, user_id: str, filter_id_or_json: str) -> Filter:
        """For /sync and /messages: a stored filter by ID, or an inline one (JSON starting
        with `{`, which is why no filter ID starts with one)."""
        if filter_id_or_json.startswith("{"):
            try:
                body = orjson.loads(filter_id_or_json)
            except orjson.JSONDecodeError:
                raise MatrixError(400, "M_NOT_JSON", "The inline filter is not JSON") from None
            try:
                check_json_limits(body)
            except JSONLimitError as exc:
                raise MatrixError(400, "M_BAD_JSON", f"Invalid filter: {exc}") from None
            return self.validate(body)
        return parse_filter(await self.get(user_id, user_id, filter_id_or_json))
