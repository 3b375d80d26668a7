"""Relations between events (spec: client-server-api "Forming relationships between events"):
the children of an event, the thread list of a room, and bundled aggregations for served
events - the latest edit (m.replace), the thread summary (m.thread) and the references
(m.reference).

What a user is shown goes through history visibility: children they may not see are left
out of lists and aggregations, and a parent they may not see is not found.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.requester import UserRequester
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.visibility import HistoryVisibility
from ranvier.storage import relations as relation_store
from ranvier.storage.database import Database
from ranvier.storage.relations import ChildRow, Position
from ranvier.streams.tokens import InvalidToken, RoomPosition, StreamToken, parse_token

REPLACE = "m.replace"
THREAD = "m.thread"
REFERENCE = "m.reference"
ENCRYPTED = "m.room.encrypted"

# spec: relations.yaml `recurse` - "Homeservers SHOULD traverse at least 3 levels"
RECURSION_DEPTH = 3
# how far back a thread is searched for a latest event the user may see
LATEST_THREAD_EVENT_SEARCH = 50


def parse_position(token: str) -> Position:
    """A /relations, /messages or /sync token (streams/tokens.py) as a point to page from."""
    try:
        parsed = parse_token(token)
    except InvalidToken:
        raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token") from None
    if isinstance(parsed, StreamToken):
        return Position(None, parsed.stream)
    return Position(parsed.depth, parsed.stream)


def format_position(position: Position) -> str:
    if position.topological is None:
        return str(StreamToken(position.stream))
    return str(RoomPosition(position.topological, position.stream))


def relation_of(event: Event) -> tuple[str, str] | None:
    """(rel_type, parent event ID) from the event's cleartext m.relates_to."""
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None
    rel_type, parent = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None


def is_valid_replacement(original: Event, replacement: Event) -> bool:
    """spec: event replacements, "Validity of replacement events"."""
    if original.room_id != replacement.room_id or original.sender != replacement.sender:
        return False
    if original.type != replacement.type:
        return False
    if original.is_state() or replacement.is_state():
        return False
    own = relation_of(original)
    if own is not None and own[0] == REPLACE:
        return False
    # an encrypted replacement carries m.new_content inside its ciphertext
    return replacement.type == ENCRYPTED or isinstance(
        replacement.content.get("m.new_content"), dict
    )


def latest_replacement(original: Event, candidates: Iterable[Event]) -> Event | None:
    """spec: the most recent valid replacement by origin_server_ts, then the largest ID."""
    valid = [event for event in candidates if is_valid_replacement(original, event)]
    return max(valid, key=lambda e: (e.origin_server_ts, e.event_id), default=None)


@dataclass(frozen=True)
class RelationsQuery:
    rel_type: str | None = None
    event_type: str | None = None
    direction: Literal["b", "f"] = "b"
    from_token: str | None = None
    to_token: str | None = None
    limit: int = 5
    # None: the client did not send `recurse`
    recurse: bool | None = None


class RelationsService:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        serializer: ClientEventSerializer,
        visibility: HistoryVisibility,
        redactions: Redactions,
    ) -> None:
        self._db = db
        self._loader = loader
        self._serializer = serializer
        self._visibility = visibility
        self._redactions = redactions

    # -- sending -------------------------------------------------------------------------

    async def check_new_relation(
        self, requester: UserRequester, room_id: str, event_type: str, content: dict[str, Any]
    ) -> None:
        """A message validator for EventSendingService: refuse a thread whose root relates
        to another event (spec: threading, "Validation of m.thread relationships")."""
        relates = content.get("m.relates_to")
        if not isinstance(relates, dict) or relates.get("rel_type") != THREAD:
            return
        root_id = relates.get("event_id")
        root = await self._loader.get_event(root_id) if isinstance(root_id, str) else None
        if root is not None and root.room_id == room_id and relation_of(root) is not None:
            # spec: no specific error code exists for this; M_UNKNOWN with a 400
            raise MatrixError(
                400, "M_UNKNOWN", "Cannot start a thread from an event that has a relation"
            )

    # -- GET /relations ------------------------------------------------------------------

    async def get_relations(
        self, requester: UserRequester, room_id: str, parent_id: str, query: RelationsQuery
    ) -> dict[str, Any]:
        parent = await self._loader.get_event(parent_id)
        if (
            parent is None
            or parent.room_id != room_id
            or not await self._visibility.filter_events_for_client(requester.user_id, [parent])
        ):
            # spec: the same answer whether it does not exist or may not be seen
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        from_position = parse_position(query.from_token) if query.from_token else None
        to_position = parse_position(query.to_token) if query.to_token else None
        rows = await relation_store.get_relations(
            self._db,
            room_id,
            parent_id,
            rel_type=query.rel_type,
            event_type=query.event_type,
            direction=query.direction,
            from_position=from_position,
            to_position=to_position,
            # one more than asked shows whether there is a next page
            limit=query.limit + 1,
            max_depth=RECURSION_DEPTH if query.recurse else 1,
        )
        page, more = rows[: query.limit], len(rows) > query.limit
        chunk = await self._serve(requester, [row.event_id for row in page])
        body: dict[str, Any] = {"chunk": chunk}
        if more and page:
            last = page[-1]
            after_last = (
                last.stream_ordering if query.direction == "f" else last.stream_ordering - 1
            )
            body["next_batch"] = format_position(Position(last.topological_ordering, after_last))
        if query.recurse is not None:
            body["recursion_depth"] = RECURSION_DEPTH if query.recurse else 1
        return body

    # -- GET /threads --------------------------------------------------------------------

    async def get_threads(
        self,
        requester: UserRequester,
        room_id: str,
        *,
        include: Literal["all", "participated"],
        from_token: str | None,
        limit: int,
    ) -> dict[str, Any]:
        await self._visibility.check_user_can_see_room(requester.user_id, room_id)
        before = None
        if from_token is not None:
            position = parse_position(from_token)
            if position.topological is not None:
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token")
            before = position.stream
        rows = await relation_store.get_threads(
            self._db,
            room_id,
            participant=requester.user_id if include == "participated" else None,
            before_stream=before,
            limit=limit + 1,
        )
        page, more = rows[:limit], len(rows) > limit
        chunk = await self._serve(requester, [row.root_id for row in page])
        body: dict[str, Any] = {"chunk": chunk}
        if more and page:
            body["next_batch"] = format_position(Position(None, page[-1].latest_stream_ordering))
        return body

    # -- bundled aggregations ------------------------------------------------------------

    async def bundled_aggregations(
        self, event_ids: Iterable[str], user_id: str
    ) -> dict[str, dict[str, Any]]:
        """event ID -> its `m.relations` object, for the events that have any; what the
        client-event serializer puts in `unsigned`."""
        return await self._aggregate(event_ids, user_id, with_threads=True)

    async def _aggregate(
        self, event_ids: Iterable[str], user_id: str, *, with_threads: bool
    ) -> dict[str, dict[str, Any]]:
        loaded = await self._loader.get_events(event_ids)
        # spec: state events do not receive bundled aggregations
        parents = {
            event_id: event
            for event_id, event in loaded.items()
            if not event.is_state() and event.rejected_reason is None
        }
        if not parents:
            return {}
        # most events have no relations at all: one look first
        types = await relation_store.get_relation_types_of(self._db, parents)
        if not types:
            return {}
        result: dict[str, dict[str, Any]] = {}
        rows = await relation_store.get_children_of(
            self._db,
            [p for p, found in types.items() if REPLACE in found or REFERENCE in found],
            (REPLACE, REFERENCE),
        )
        children = await self._visible(user_id, [row.event_id for row in rows])
        await self._add_edits(result, parents, rows, children, user_id)
        for row in rows:
            child = children.get(row.event_id)
            parent = parents[row.relates_to_id]
            if row.relation_type == REFERENCE and child and child.room_id == parent.room_id:
                references = result.setdefault(row.relates_to_id, {}).setdefault(
                    REFERENCE, {"chunk": []}
                )
                references["chunk"].append({"event_id": row.event_id})
        threads = {p: parents[p] for p, found in types.items() if THREAD in found}
        if with_threads and threads:
            await self._add_threads(result, threads, user_id)
        return result

    async def _add_edits(
        self,
        result: dict[str, dict[str, Any]],
        parents: Mapping[str, Event],
        rows: list[ChildRow],
        children: Mapping[str, Event],
        user_id: str,
    ) -> None:
        candidates: dict[str, list[Event]] = {}
        for row in rows:
            child = children.get(row.event_id)
            if row.relation_type == REPLACE and child is not None:
                candidates.setdefault(row.relates_to_id, []).append(child)
        if not candidates:
            return
        # spec: a redacted original gets no m.replace aggregation
        redacted = await self._redactions.applied(parents[parent_id] for parent_id in candidates)
        edits: dict[str, Event] = {}
        for parent_id, replacements in candidates.items():
            if parent_id in redacted:
                continue
            latest = latest_replacement(parents[parent_id], replacements)
            if latest is not None:
                edits[parent_id] = latest
        served = await self._serializer.serialize_events(
            list(edits.values()), requester_user_id=user_id
        )
        for parent_id, edit in zip(edits, served, strict=True):
            result.setdefault(parent_id, {})[REPLACE] = edit

    async def _add_threads(
        self, result: dict[str, dict[str, Any]], parents: Mapping[str, Event], user_id: str
    ) -> None:
        summaries = await relation_store.get_thread_summaries(self._db, parents)
        if not summaries:
            return
        participated = await relation_store.get_threads_participated(self._db, summaries, user_id)
        visible = await self._visible(
            user_id, [summary.latest_event_id for summary in summaries.values()]
        )
        latest: dict[str, Event] = {}
        for root_id, summary in summaries.items():
            event = visible.get(summary.latest_event_id)
            if event is None:
                # the newest reply is hidden from this user (e.g. sent after they left)
                event = await self._latest_visible_in_thread(root_id, user_id)
            if event is not None:
                latest[root_id] = event
        if not latest:
            return
        # spec: the latest event carries its own aggregations; threads do not nest
        nested = await self._aggregate(
            [event.event_id for event in latest.values()], user_id, with_threads=False
        )
        served = await self._serializer.serialize_events(
            list(latest.values()), requester_user_id=user_id, bundled_aggregations=nested
        )
        for root_id, latest_event in zip(latest, served, strict=True):
            result.setdefault(root_id, {})[THREAD] = {
                "latest_event": latest_event,
                "count": summaries[root_id].count,
                "current_user_participated": parents[root_id].sender == user_id
                or root_id in participated,
            }

    async def _latest_visible_in_thread(self, root_id: str, user_id: str) -> Event | None:
        ids = await relation_store.get_thread_events_newest_first(
            self._db, root_id, LATEST_THREAD_EVENT_SEARCH
        )
        visible = await self._visible(user_id, ids)
        return next((visible[event_id] for event_id in ids if event_id in visible), None)

    # -- helpers -------------------------------------------------------------------------

    async def _visible(self, user_id: str, event_ids: Collection[str]) -> dict[str, Event]:
        loaded = await self._loader.get_events(event_ids)
        events = [loaded[event_id] for event_id in event_ids if event_id in loaded]
        allowed = await self._visibility.filter_events_for_client(user_id, events)
        return {event.event_id: event for event in allowed}

    async def _serve(self, requester: UserRequester, event_ids: list[str]) -> list[dict[str, Any]]:
        """The events the requester may see, in client format with their aggregations."""
        visible = await self._visible(requester.user_id, event_ids)
        events = [visible[event_id] for event_id in event_ids if event_id in visible]
        aggregations = await self.bundled_aggregations(
            [event.event_id for event in events], requester.user_id
        )
        return await self._serializer.serialize_events(
            events,
            requester_user_id=requester.user_id,
            requester_device_id=requester.device_id,
            bundled_aggregations=aggregations,
        )
