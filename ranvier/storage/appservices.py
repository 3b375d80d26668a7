"""Application service transactions: per service, how far each stream has been put into
transactions, and the transactions it has not acknowledged yet, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, Table, Text, func, select

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.metadata import metadata

appservice_state = Table(
    "appservice_state",
    metadata,
    Column("appservice_id", Text, primary_key=True),
    Column("last_txn_id", BigInteger, nullable=False, server_default="0"),
    Column("events_position", BigInteger, nullable=False),
    Column("receipts_position", BigInteger, nullable=False, server_default="0"),
    Column("presence_position", BigInteger, nullable=False, server_default="0"),
    Column("to_device_position", BigInteger, nullable=False, server_default="0"),
    Column("device_lists_position", BigInteger, nullable=False, server_default="0"),
)

appservice_txns = Table(
    "appservice_txns",
    metadata,
    Column("appservice_id", Text, nullable=False),
    Column("txn_id", BigInteger, nullable=False),
    Column("body_json", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("appservice_id", "txn_id"),
)


# -- `ranvier appservices` (the query helper's block; restored by txn after overwriting it) --


@dataclass(frozen=True)
class AppServiceBacklog:
    """How far behind one service is, as the database says."""

    events_position: int | None
    unacknowledged_txns: int
    oldest_unacknowledged_ts: int | None


async def get_backlogs(db: Database) -> tuple[dict[str, AppServiceBacklog], int]:
    """Every service the database knows, with its backlog; and the newest event position."""
    found: dict[str, AppServiceBacklog] = {}
    async with db.read() as conn:
        newest = int((await conn.execute(select(func.max(events.c.stream_ordering)))).scalar() or 0)
        positions = {
            row.appservice_id: int(row.events_position)
            for row in await conn.execute(
                select(appservice_state.c.appservice_id, appservice_state.c.events_position)
            )
        }
        pending = {
            row.appservice_id: (int(row.txns), int(row.oldest))
            for row in await conn.execute(
                select(
                    appservice_txns.c.appservice_id,
                    func.count().label("txns"),
                    func.min(appservice_txns.c.created_ts).label("oldest"),
                ).group_by(appservice_txns.c.appservice_id)
            )
        }
    for appservice_id in set(positions) | set(pending):
        count, oldest = pending.get(appservice_id, (0, None))
        found[appservice_id] = AppServiceBacklog(positions.get(appservice_id), count, oldest)
    return found, newest
