"""event_search: the full text index of room events that POST /search reads.

The two engines index differently, and this module is the one place that knows it:
- SQLite: an FTS5 virtual table (porter stemming) whose rowid is the event's
  stream_ordering; rank is the negated bm25 score, so that higher is better;
- PostgreSQL: a table with a GIN-indexed `tsvector` (the `english` configuration, as
  Synapse uses); rank is `ts_rank_cd`.

A query is a list of words; each must occur in the text, as a word or the start of one.
Searches only reach rooms the searcher has joined at some point (room_memberships); the
service then applies history visibility to each hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database

Order = Literal["rank", "recent"]
TS_CONFIG = "english"


@dataclass(frozen=True)
class SearchEntry:
    """One event's searchable text."""

    event_id: str
    room_id: str
    sender: str
    key: str  # content.body, content.name or content.topic
    value: str


@dataclass(frozen=True)
class SearchHit:
    event_id: str
    room_id: str
    sender: str
    stream_ordering: int
    rank: float


@dataclass(frozen=True)
class SearchQuery:
    """What to look for and where; `None` lists mean "no restriction"."""

    user_id: str
    words: Sequence[str]
    keys: Sequence[str]
    rooms: Sequence[str] | None = None
    not_rooms: Sequence[str] = ()
    senders: Sequence[str] | None = None
    not_senders: Sequence[str] = ()


@dataclass(frozen=True)
class StoredText:
    """An event as the populate update reads it, for the service to pick its text from."""

    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    content: dict[str, Any]
    stream_ordering: int


def _fts5_query(words: Sequence[str]) -> str:
    # each word quoted (so FTS5 operators in user text mean nothing) and matched as a prefix
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


def _tsquery(words: Sequence[str]) -> str:
    # the service hands over letters and digits only, so no tsquery syntax can sneak in
    return " & ".join(f"{word}:*" for word in words)


async def index_events(conn: AsyncConnection, entries: Sequence[SearchEntry]) -> None:
    """Add entries in the caller's transaction, after their events are written (the index
    is ordered by their stream_ordering); an event already indexed is left alone, so the
    populate update and live indexing may overlap."""
    if not entries:
        return
    params = [
        {
            "event_id": e.event_id,
            "room_id": e.room_id,
            "sender": e.sender,
            "key": e.key,
            "value": e.value,
        }
        for e in entries
    ]
    if conn.dialect.name == "sqlite":
        statement = text(
            "INSERT INTO event_search (rowid, value, event_id, room_id, sender, key) "
            "SELECT stream_ordering, :value, :event_id, :room_id, :sender, :key FROM events "
            "WHERE event_id = :event_id AND NOT EXISTS "
            "(SELECT 1 FROM event_search WHERE event_search.rowid = events.stream_ordering)"
        )
    else:
        statement = text(
            "INSERT INTO event_search (event_id, room_id, sender, key, stream_ordering, vector) "
            "SELECT event_id, :room_id, :sender, :key, stream_ordering, "
            f"to_tsvector('{TS_CONFIG}', :value) FROM events WHERE event_id = :event_id "
            "ON CONFLICT (event_id) DO NOTHING"
        )
    await conn.execute(statement, params)


async def remove_events(conn: AsyncConnection, event_ids: Sequence[str]) -> None:
    """Drop events from the index (they were redacted), in the caller's transaction."""
    if not event_ids:
        return
    if conn.dialect.name == "sqlite":
        # by rowid: event_id is not indexed in the FTS5 table
        statement = text(
            "DELETE FROM event_search WHERE rowid IN "
            "(SELECT stream_ordering FROM events WHERE event_id IN :ids)"
        )
    else:
        statement = text("DELETE FROM event_search WHERE event_id IN :ids")
    await conn.execute(statement.bindparams(bindparam("ids", expanding=True)), {"ids": event_ids})


def _conditions(dialect: str, query: SearchQuery) -> tuple[list[str], dict[str, Any], set[str]]:
    where: list[str] = [
        "room_id IN (SELECT room_id FROM room_memberships "
        "WHERE user_id = :user_id AND membership = 'join')",
        "key IN :keys",
    ]
    params: dict[str, Any] = {"user_id": query.user_id, "keys": list(query.keys)}
    expanding = {"keys"}
    if dialect == "sqlite":
        where.insert(0, "event_search MATCH :match")
        params["match"] = _fts5_query(query.words)
    else:
        where.insert(0, "vector @@ to_tsquery(:config, :match)")
        params["match"] = _tsquery(query.words)
        params["config"] = TS_CONFIG
    for name, values, negated, column in (
        ("rooms", query.rooms, False, "room_id"),
        ("not_rooms", query.not_rooms, True, "room_id"),
        ("senders", query.senders, False, "sender"),
        ("not_senders", query.not_senders, True, "sender"),
    ):
        if values is None or (negated and not values):
            continue
        where.append(f"{column} {'NOT IN' if negated else 'IN'} :{name}")
        params[name] = list(values)
        expanding.add(name)
    return where, params, expanding


def _statement(sql: str, expanding: set[str]) -> Any:
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in expanding))


async def search_events(
    db: Database,
    query: SearchQuery,
    *,
    order: Order,
    limit: int,
    before_stream: int | None = None,
    offset: int = 0,
) -> list[SearchHit]:
    """One page of hits. `recent` pages by `before_stream` (newest first), `rank` by
    `offset` (best first, newest first among equals)."""
    if not query.words or not query.keys:
        return []
    where, params, expanding = _conditions(db.dialect, query)
    if db.dialect == "sqlite":
        position, rank = "rowid", "-bm25(event_search)"
        rank_order = "bm25(event_search), rowid DESC"
    else:
        position = "stream_ordering"
        rank = "ts_rank_cd(vector, to_tsquery(:config, :match))"
        rank_order = "rank DESC, stream_ordering DESC"
    if order == "recent":
        if before_stream is not None:
            where.append(f"{position} < :before")
            params["before"] = before_stream
        ordering, page = f"{position} DESC", "LIMIT :limit"
    else:
        ordering, page = rank_order, "LIMIT :limit OFFSET :offset"
        params["offset"] = offset
    params["limit"] = limit
    sql = (
        f"SELECT event_id, room_id, sender, {position} AS stream_ordering, {rank} AS rank "
        f"FROM event_search WHERE {' AND '.join(where)} ORDER BY {ordering} {page}"
    )
    async with db.read() as conn:
        rows = await conn.execute(_statement(sql, expanding), params)
        return [
            SearchHit(row.event_id, row.room_id, row.sender, row.stream_ordering, float(row.rank))
            for row in rows
        ]


async def count_events(db: Database, query: SearchQuery) -> int:
    """How many indexed events match, before history visibility (so an upper bound)."""
    if not query.words or not query.keys:
        return 0
    where, params, expanding = _conditions(db.dialect, query)
    sql = f"SELECT COUNT(*) FROM event_search WHERE {' AND '.join(where)}"
    async with db.read() as conn:
        return int((await conn.execute(_statement(sql, expanding), params)).scalar_one())


async def events_to_index(
    conn: AsyncConnection, types: Sequence[str], after_stream: int, limit: int
) -> list[StoredText]:
    """The next events of the given types by stream_ordering, skipping rejected ones and
    those a redaction names (the service's live indexing decides finer cases)."""
    statement = text(
        "SELECT event_id, room_id, sender, type, state_key, json, stream_ordering FROM events "
        "WHERE stream_ordering > :after AND type IN :types AND rejected_reason IS NULL "
        "AND outlier = :outlier AND soft_failed = :outlier AND NOT EXISTS "
        "(SELECT 1 FROM redactions WHERE redactions.redacts = events.event_id) "
        "ORDER BY stream_ordering LIMIT :limit"
    ).bindparams(bindparam("types", expanding=True))
    rows = await conn.execute(
        statement,
        {"after": after_stream, "types": list(types), "outlier": False, "limit": limit},
    )
    found: list[StoredText] = []
    for row in rows:
        pdu = orjson.loads(row.json)
        content = pdu.get("content")
        found.append(
            StoredText(
                row.event_id,
                row.room_id,
                row.sender,
                row.type,
                row.state_key,
                content if isinstance(content, dict) else {},
                row.stream_ordering,
            )
        )
    return found


async def events_around(
    db: Database, room_id: str, event_id: str, before: int, after: int
) -> tuple[list[str], list[str]]:
    """The IDs of up to `before` events preceding `event_id` in its room (nearest first) and
    up to `after` following it (oldest first), in stream order, for a result's context."""
    found_before: list[str] = []
    found_after: list[str] = []
    async with db.read() as conn:
        position = (
            await conn.execute(
                text("SELECT stream_ordering FROM events WHERE event_id = :event_id"),
                {"event_id": event_id},
            )
        ).scalar()
        if position is None:
            return [], []
        base = (
            "SELECT event_id FROM events WHERE room_id = :room_id AND outlier = :outlier "
            "AND soft_failed = :outlier AND rejected_reason IS NULL "
            "AND stream_ordering {} :position "
            "ORDER BY stream_ordering {} LIMIT :limit"
        )
        params = {"room_id": room_id, "position": position, "outlier": False}
        if before > 0:
            rows = await conn.execute(text(base.format("<", "DESC")), {**params, "limit": before})
            found_before = [row.event_id for row in rows]
        if after > 0:
            rows = await conn.execute(text(base.format(">", "ASC")), {**params, "limit": after})
            found_after = [row.event_id for row in rows]
    return found_before, found_after


async def stream_orderings(db: Database, event_ids: Sequence[str]) -> dict[str, int]:
    if not event_ids:
        return {}
    statement = text(
        "SELECT event_id, stream_ordering FROM events WHERE event_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    async with db.read() as conn:
        rows = await conn.execute(statement, {"ids": list(dict.fromkeys(event_ids))})
        return {row.event_id: row.stream_ordering for row in rows}
