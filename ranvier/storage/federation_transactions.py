"""Transactions received from other servers, each answered once (spec: a retried
transaction ID gets the same answer without being processed again)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

received_transactions = Table(
    "received_transactions",
    metadata,
    Column("origin", Text, nullable=False),
    Column("transaction_id", Text, nullable=False),
    Column("response_json", Text, nullable=False),
    Column("received_ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("origin", "transaction_id"),
    Index("ix_received_transactions_received_ts", "received_ts"),
)


async def get_response(db: Database, origin: str, transaction_id: str) -> dict[str, Any] | None:
    """The answer given to this transaction, if it was processed before."""
    t = received_transactions.c
    query = select(t.response_json).where(t.origin == origin, t.transaction_id == transaction_id)
    async with db.read() as conn:
        value = (await conn.execute(query)).scalar()
    if value is None:
        return None
    answer: dict[str, Any] = orjson.loads(value)
    return answer


async def insert_response(
    db: Database, origin: str, transaction_id: str, response: Mapping[str, Any], now: int
) -> None:
    """Remember the answer to a transaction; a concurrent duplicate keeps the first."""
    async with db.transaction() as conn:
        try:
            async with conn.begin_nested():
                await conn.execute(
                    insert(received_transactions).values(
                        origin=origin,
                        transaction_id=transaction_id,
                        response_json=orjson.dumps(response).decode(),
                        received_ts=now,
                    )
                )
        except IntegrityError:
            pass


async def delete_older_than(db: Database, before_ts: int) -> int:
    """Forget answers received before `before_ts`; returns how many."""
    async with db.transaction() as conn:
        result = await conn.execute(
            delete(received_transactions).where(received_transactions.c.received_ts < before_ts)
        )
    return int(result.rowcount or 0)
