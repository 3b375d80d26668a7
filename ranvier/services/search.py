"""Server-side search over room events (spec: client-server-api "Server Side Search").

Indexed: `content.body` of m.room.message, `content.name` of m.room.name, and
`content.topic` of m.room.topic (with the text/plain `m.topic` body). Encrypted rooms hold
m.room.encrypted events, so they are never indexed. Events are indexed in the transaction
that persists them (`index_in_transaction`), so the index never misses a committed event;
a redaction that takes effect removes its target (`on_persisted`), and results are checked
once more when served, so a redacted event is never returned.

Only rooms the searcher has joined at some point are searched, and every hit goes through
history visibility, so a former member finds nothing sent after they left.

`next_batch` is opaque: the ordering, the position reached, and for a group's token the
room or sender it is limited to. `recent` pages by stream position (stable as new events
arrive); `rank` pages by offset into the ranked list.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.filters import RoomEventFilter
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.visibility import HistoryVisibility
from ranvier.storage import search as store
from ranvier.storage import state as state_store
from ranvier.storage.background_updates import BackgroundUpdater, BatchResult
from ranvier.storage.database import Database
from ranvier.storage.search import SearchEntry, SearchHit, SearchQuery

POPULATE_EVENT_SEARCH = "populate_event_search"
BODY, NAME, TOPIC = "content.body", "content.name", "content.topic"
ALL_KEYS = (BODY, NAME, TOPIC)
TYPE_TO_KEY = {"m.room.message": BODY, "m.room.name": NAME, "m.room.topic": TOPIC}
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# how many pages of raw hits one request may read while visibility filters hits out; past
# this the answer is shorter than the limit, with a next_batch to go on from
MAX_PAGES_PER_REQUEST = 10
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 100
_WORD = re.compile(r"[^\W_]+")

Order = Literal["rank", "recent"]
GroupKey = Literal["room_id", "sender"]


def search_words(term: str) -> list[str]:
    """The words of a search term: letters and digits, lower-cased."""
    return [word.casefold() for word in _WORD.findall(term)]


def searchable_text(event: Event) -> tuple[str, str] | None:
    """(key, text) to index for an event, or None if it has nothing searchable."""
    key = TYPE_TO_KEY.get(event.type)
    if key is None or event.rejected_reason is not None:
        return None
    if event.type != "m.room.message" and event.state_key != "":
        return None
    return _text_of(event.type, event.content)


def _text_of(event_type: str, content: Mapping[str, Any]) -> tuple[str, str] | None:
    key = TYPE_TO_KEY[event_type]
    field_name = key.removeprefix("content.")
    parts: list[str] = []
    value = content.get(field_name)
    if isinstance(value, str) and value.strip():
        parts.append(value)
    if event_type == "m.room.topic":
        # spec: the text/plain representation in m.topic is searched as well
        topic = content.get("m.topic")
        representations = topic.get("m.text") if isinstance(topic, dict) else None
        for item in representations if isinstance(representations, list) else []:
            if not isinstance(item, dict):
                continue
            body, mimetype = item.get("body"), item.get("mimetype", "text/plain")
            if mimetype == "text/plain" and isinstance(body, str) and body not in parts:
                parts.append(body)
    if not parts:
        return None
    return key, "\n".join(parts)


def highlights(words: Sequence[str], texts: Sequence[str]) -> list[str]:
    """The query's words, plus the words of the results that they are the start of (what a
    client should highlight: a search for "mart" highlights "martians")."""
    found = dict.fromkeys(words)
    for value in texts:
        for word in _WORD.findall(value):
            folded = word.casefold()
            if any(folded.startswith(query_word) for query_word in words):
                found.setdefault(folded)
    return list(found)


@dataclass(frozen=True)
class BatchToken:
    order: Order
    # recent: the stream position to continue below; rank: the offset to continue from
    position: int
    group: tuple[GroupKey, str] | None = None

    def encode(self) -> str:
        raw: list[Any] = [self.order, self.position]
        if self.group is not None:
            raw += list(self.group)
        return base64.urlsafe_b64encode(orjson.dumps(raw)).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> BatchToken:
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            order, position, *group = raw
            if order not in ("rank", "recent") or type(position) is not int or position < 0:
                raise ValueError(token)
            if group and (len(group) != 2 or group[0] not in ("room_id", "sender")):
                raise ValueError(token)
            if group and not isinstance(group[1], str):
                raise ValueError(token)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise MatrixError(400, "M_INVALID_PARAM", "Unknown next_batch token") from None
        return cls(order, position, (group[0], group[1]) if group else None)


@dataclass(frozen=True)
class RoomEventsCriteria:
    """search_categories.room_events of the request, validated."""

    search_term: str
    keys: tuple[str, ...] = ALL_KEYS
    filter: RoomEventFilter = field(default_factory=RoomEventFilter)
    order_by: Order = "rank"
    include_context: bool = False
    before_limit: int = DEFAULT_CONTEXT
    after_limit: int = DEFAULT_CONTEXT
    include_profile: bool = False
    include_state: bool = False
    group_by: tuple[GroupKey, ...] = ()


@dataclass
class _Found:
    hit: SearchHit
    event: Event
    served: dict[str, Any]


class SearchService:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        visibility: HistoryVisibility,
        serializer: ClientEventSerializer,
        redactions: Redactions,
    ) -> None:
        self._db = db
        self._loader = loader
        self._visibility = visibility
        self._serializer = serializer
        self._redactions = redactions

    # -- searching ---------------------------------------------------------------------------

    async def search_room_events(
        self,
        user_id: str,
        device_id: str | None,
        criteria: RoomEventsCriteria,
        next_batch: str | None,
    ) -> dict[str, Any]:
        """The `room_events` object of the answer to POST /search."""
        token = BatchToken.decode(next_batch) if next_batch is not None else None
        if token is not None and token.order != criteria.order_by:
            raise MatrixError(
                400, "M_INVALID_PARAM", "next_batch belongs to a search in another order"
            )
        words = search_words(criteria.search_term)
        query = self._query(user_id, words, criteria, token)
        limit = min(criteria.filter.limit_or(DEFAULT_LIMIT), MAX_LIMIT)
        found: list[_Found] = []
        more_at: int | None = None
        count = 0
        if not criteria.filter.blocks_everything():
            found, more_at = await self._collect(user_id, device_id, query, criteria, token, limit)
            count = await store.count_events(self._db, query)
        body: dict[str, Any] = {
            "count": count,
            "highlights": highlights(words, [self._text(item.event) for item in found]),
            "results": [],
        }
        for item in found:
            entry: dict[str, Any] = {"rank": item.hit.rank, "result": item.served}
            if criteria.include_context:
                entry["context"] = await self._context(user_id, device_id, item.event, criteria)
            body["results"].append(entry)
        next_token = None
        if more_at is not None:
            group = token.group if token is not None else None
            next_token = BatchToken(criteria.order_by, more_at, group)
            body["next_batch"] = next_token.encode()
        if criteria.group_by:
            body["groups"] = self._groups(found, criteria.group_by, next_token)
        if criteria.include_state:
            body["state"] = await self._room_states(
                user_id, device_id, {item.event.room_id for item in found}
            )
        return body

    def _query(
        self,
        user_id: str,
        words: list[str],
        criteria: RoomEventsCriteria,
        token: BatchToken | None,
    ) -> SearchQuery:
        rooms = criteria.filter.rooms
        senders = criteria.filter.senders
        if token is not None and token.group is not None:
            # a group's token continues within that group only
            group_key, value = token.group
            if group_key == "room_id":
                rooms = tuple(r for r in (rooms or (value,)) if r == value)
            else:
                senders = tuple(s for s in (senders or (value,)) if s == value)
        return SearchQuery(
            user_id=user_id,
            words=words,
            keys=criteria.keys,
            rooms=rooms,
            not_rooms=criteria.filter.not_rooms,
            senders=senders,
            not_senders=criteria.filter.not_senders,
        )

    async def _collect(
        self,
        user_id: str,
        device_id: str | None,
        query: SearchQuery,
        criteria: RoomEventsCriteria,
        token: BatchToken | None,
        limit: int,
    ) -> tuple[list[_Found], int | None]:
        """Up to `limit` visible hits and the position to continue from (None: no more)."""
        order = criteria.order_by
        position = token.position if token is not None else None
        found: list[_Found] = []
        # read a little more than needed: some hits may be hidden from this user
        page_size = limit + 5
        for _ in range(MAX_PAGES_PER_REQUEST):
            if order == "recent":
                page = await store.search_events(
                    self._db, query, order=order, limit=page_size, before_stream=position
                )
            else:
                page = await store.search_events(
                    self._db, query, order=order, limit=page_size, offset=position or 0
                )
            if not page:
                return found, None
            shown = await self._visible(user_id, device_id, page, criteria.filter)
            for index, hit in enumerate(page):
                position = hit.stream_ordering if order == "recent" else (position or 0) + 1
                item = shown.get(hit.event_id)
                if item is not None:
                    found.append(item)
                if len(found) == limit:
                    more = index < len(page) - 1 or len(page) == page_size
                    return found, position if more else None
            if len(page) < page_size:
                return found, None
        return found, position

    async def _visible(
        self,
        user_id: str,
        device_id: str | None,
        hits: Sequence[SearchHit],
        event_filter: RoomEventFilter,
    ) -> dict[str, _Found]:
        loaded = await self._loader.get_events(hit.event_id for hit in hits)
        candidates = [
            loaded[hit.event_id]
            for hit in hits
            if hit.event_id in loaded and event_filter.matches(loaded[hit.event_id].pdu)
        ]
        visible = await self._visibility.filter_events_for_client(user_id, candidates)
        served = await self._serializer.serialize_events(
            visible, requester_user_id=user_id, requester_device_id=device_id
        )
        by_id = {hit.event_id: hit for hit in hits}
        return {
            event.event_id: _Found(by_id[event.event_id], event, client)
            for event, client in zip(visible, served, strict=True)
            # a redacted event has lost the text that matched
            if "redacted_because" not in client.get("unsigned", {})
        }

    @staticmethod
    def _text(event: Event) -> str:
        text = _text_of(event.type, event.content) if event.type in TYPE_TO_KEY else None
        return text[1] if text is not None else ""

    @staticmethod
    def _groups(
        found: Sequence[_Found], group_by: Sequence[GroupKey], next_token: BatchToken | None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        for key in group_by:
            by_value: dict[str, dict[str, Any]] = {}
            for item in found:
                value = item.event.room_id if key == "room_id" else item.event.sender
                group = by_value.setdefault(value, {"order": len(by_value) + 1, "results": []})
                group["results"].append(item.event.event_id)
            if next_token is not None:
                for value, group in by_value.items():
                    token = BatchToken(next_token.order, next_token.position, (key, value))
                    group["next_batch"] = token.encode()
            groups[key] = by_value
        return groups

    async def _context(
        self, user_id: str, device_id: str | None, event: Event, criteria: RoomEventsCriteria
    ) -> dict[str, Any]:
        before_ids, after_ids = await store.events_around(
            self._db,
            event.room_id,
            event.event_id,
            min(criteria.before_limit, MAX_CONTEXT),
            min(criteria.after_limit, MAX_CONTEXT),
        )
        loaded = await self._loader.get_events([*before_ids, *after_ids])
        before = await self._visibility.filter_events_for_client(
            user_id, [loaded[i] for i in before_ids if i in loaded]
        )
        after = await self._visibility.filter_events_for_client(
            user_id, [loaded[i] for i in after_ids if i in loaded]
        )
        context: dict[str, Any] = {
            "events_before": await self._serializer.serialize_events(
                before, requester_user_id=user_id, requester_device_id=device_id
            ),
            "events_after": await self._serializer.serialize_events(
                after, requester_user_id=user_id, requester_device_id=device_id
            ),
        }
        # events_before runs nearest first: its last entry is the earliest
        first, last = (before[-1:] or [event])[0], (after[-1:] or [event])[0]
        positions = await store.stream_orderings(self._db, [first.event_id, last.event_id])
        context["start"] = context_token(positions.get(first.event_id, 0))
        context["end"] = context_token(positions.get(last.event_id, 0))
        if criteria.include_profile:
            senders = {e.sender for e in (*before, event, *after)}
            context["profile_info"] = await self._profiles_at(last, senders)
        return context

    async def _profiles_at(self, event: Event, senders: set[str]) -> dict[str, dict[str, Any]]:
        """The senders' display names and avatars in the room's state after `event`."""
        groups = await state_store.get_event_state_groups(self._db, [event.event_id])
        group = groups.get(event.event_id)
        if group is None:
            return {}
        state = await self._loader.get_state_group(group)
        member_ids = {
            sender: event_id
            for sender in senders
            if (event_id := state.get(("m.room.member", sender))) is not None
        }
        loaded = await self._loader.get_events(member_ids.values())
        profiles: dict[str, dict[str, Any]] = {}
        for sender, event_id in member_ids.items():
            member = loaded.get(event_id)
            if member is None:
                continue
            profile: dict[str, Any] = {}
            for name in ("displayname", "avatar_url"):
                value = member.content.get(name)
                if isinstance(value, str):
                    profile[name] = value
            profiles[sender] = profile
        return profiles

    async def _room_states(
        self, user_id: str, device_id: str | None, room_ids: set[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Each room's current state, or for a room the user left, the state when they left
        (what they were last allowed to see)."""
        states: dict[str, list[dict[str, Any]]] = {}
        for room_id in sorted(room_ids):
            try:
                access = await self._visibility.check_user_can_see_room(user_id, room_id)
            except MatrixError:
                continue
            if access.departed and access.membership_event_id is not None:
                groups = await state_store.get_event_state_groups(
                    self._db, [access.membership_event_id]
                )
                group = groups.get(access.membership_event_id)
                state_ids = await self._loader.get_state_group(group) if group is not None else {}
            else:
                state_ids = await state_store.get_current_state_ids(self._db, room_id)
            loaded = await self._loader.get_events(state_ids.values())
            states[room_id] = await self._serializer.serialize_events(
                [loaded[i] for i in state_ids.values() if i in loaded],
                requester_user_id=user_id,
                requester_device_id=device_id,
            )
        return states

    # -- keeping the index -------------------------------------------------------------------

    async def index_in_transaction(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        """RoomEventSender hook, inside the transaction that persists `events`."""
        entries: list[SearchEntry] = []
        for event in events:
            text = searchable_text(event)
            if text is None:
                continue
            entries.append(
                SearchEntry(event.event_id, event.room_id, event.sender, text[0], text[1])
            )
        await store.index_events(conn, entries)

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """RoomEventSender callback: a redaction that takes effect unindexes its target."""
        targets = [
            event.redacts
            for event in events
            if event.type == "m.room.redaction" and event.redacts is not None
        ]
        if not targets:
            return
        loaded = await self._loader.get_events(targets)
        applied = await self._redactions.applied(loaded.values())
        if applied:
            async with self._db.transaction() as conn:
                await store.remove_events(conn, list(applied))

    def register_background_updates(self, updater: BackgroundUpdater) -> None:
        updater.register(POPULATE_EVENT_SEARCH, self._populate_batch)

    async def _populate_batch(
        self, conn: AsyncConnection, progress: dict[str, Any], batch_size: int
    ) -> BatchResult:
        """Index the events stored before the index existed, in stream order."""
        after = progress.get("after_stream")
        after = after if isinstance(after, int) else 0
        rows = await store.events_to_index(conn, list(TYPE_TO_KEY), after, batch_size)
        if not rows:
            return BatchResult({"after_stream": after}, 0, True)
        entries: list[SearchEntry] = []
        for row in rows:
            if row.type != "m.room.message" and row.state_key != "":
                continue
            text = _text_of(row.type, row.content)
            if text is not None:
                entries.append(SearchEntry(row.event_id, row.room_id, row.sender, *text))
        await store.index_events(conn, entries)
        return BatchResult({"after_stream": rows[-1].stream_ordering}, len(rows), False)


def context_token(stream_ordering: int) -> str:
    """A pagination token for /messages at a stream position."""
    return f"s{stream_ordering}"
