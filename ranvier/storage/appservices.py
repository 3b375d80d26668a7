"""Application service transactions: per service, how far each stream has been put into
transactions, and the transactions it has not acknowledged yet, oldest first.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, Table, Text

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
