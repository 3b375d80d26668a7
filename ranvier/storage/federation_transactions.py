"""Transactions received from other servers, each answered once (spec: a retried
transaction ID gets the same answer without being processed again)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, PrimaryKeyConstraint, Table, Text

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
