"""stream_positions: the last position handed out in each named stream.

Every change a client can observe gets a position in its stream, allocated in the same
transaction as the write, so that /sync can ask "what changed since N".

Allocation increments the stream's row. That row stays locked until the transaction ends
(PostgreSQL row lock; on SQLite every writer holds the database write lock), so positions in
one stream commit in the order they were handed out: once a reader sees position N as
current, every change up to N is visible. The price is that writers to one stream take
turns; a sharded stream writer would need per-writer positions instead.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Table, Text, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import insert_for
from ranvier.storage.metadata import metadata

stream_positions = Table(
    "stream_positions",
    metadata,
    Column("stream_name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# the streams that exist so far; any name works, these keep callers from misspelling one
ACCOUNT_DATA_STREAM = "account_data"
FILTER_IDS = "user_filters"
PUSH_RULES_STREAM = "push_rules"


async def next_position(conn: AsyncConnection, stream: str) -> int:
    """Allocate the next position of `stream` (1 for a stream never used). `conn` must be in
    a write transaction (`Database.transaction()`): the position is only taken if it commits,
    and other writers to the stream wait until then."""
    bump = (
        update(stream_positions)
        .where(stream_positions.c.stream_name == stream)
        .values(position=stream_positions.c.position + 1)
    )
    if (await conn.execute(bump)).rowcount == 0:
        # first use of the stream; two first writers may race here, so insert-if-absent
        # and let the loser's UPDATE below wait for (and build on) the winner's row
        await conn.execute(
            insert_for(conn)(stream_positions)
            .values(stream_name=stream, position=0)
            .on_conflict_do_nothing(index_elements=["stream_name"])
        )
        await conn.execute(bump)
    # RETURNING would save this read, but SQLite only has it from 3.35 and we support 3.27
    return await current_position(conn, stream)


async def current_position(conn: AsyncConnection, stream: str) -> int:
    """The last position handed out in `stream` and committed (0 if none); inside a
    transaction that allocated one, that position."""
    position = (
        await conn.execute(
            select(stream_positions.c.position).where(stream_positions.c.stream_name == stream)
        )
    ).scalar_one_or_none()
    return int(position) if position is not None else 0
