"""Each remote server's delivery health: the backoff after failures, as the admin API shows it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, Table, Text

from ranvier.storage.metadata import metadata

destinations = Table(
    "destinations",
    metadata,
    Column("destination", Text, nullable=False),
    Column("retry_last_ts", BigInteger, nullable=True),
    Column("retry_interval", BigInteger, nullable=True),
    Column("failure_ts", BigInteger, nullable=True),
    Column("last_successful_stream_ordering", BigInteger, nullable=True),
    PrimaryKeyConstraint("destination"),
)
