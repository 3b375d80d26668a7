"""Other servers' signing keys, each row one server's (or notary's) signed answer for one key."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, PrimaryKeyConstraint, Table, Text

from ranvier.storage.metadata import metadata

server_keys_json = Table(
    "server_keys_json",
    metadata,
    Column("server_name", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("from_server", Text, nullable=False),
    Column("ts_added_ms", BigInteger, nullable=False),
    Column("ts_valid_until_ms", BigInteger, nullable=False),
    Column("key_json", LargeBinary, nullable=False),
    PrimaryKeyConstraint("server_name", "key_id", "from_server"),
)
