"""Other servers' signing keys, each row one server's (or notary's) signed answer for one key."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, LargeBinary, PrimaryKeyConstraint, Table, Text, select

from ranvier.protocol.canonical_json import encode_canonical_json
from ranvier.storage.database import Database, insert_for
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


@dataclass(frozen=True, slots=True)
class StoredKeyResponse:
    """One row: `from_server`'s signed answer (`key_json`) holding `server_name`'s `key_id`,
    which verifies signatures made until `ts_valid_until_ms`."""

    server_name: str
    key_id: str
    from_server: str
    ts_added_ms: int
    ts_valid_until_ms: int
    key_json: dict[str, Any]


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def store_key_response(
        self,
        server_name: str,
        from_server: str,
        key_json: Mapping[str, Any],
        valid_until_by_key_id: Mapping[str, int],
        ts_added_ms: int,
    ) -> None:
        """Keep `key_json` once for each key it holds, replacing what `from_server` said of
        that key before."""
        if not valid_until_by_key_id:
            return
        encoded = encode_canonical_json(key_json)
        async with self._db.transaction() as conn:
            statement = insert_for(conn)(server_keys_json)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["server_name", "key_id", "from_server"],
                    set_={
                        "ts_added_ms": statement.excluded.ts_added_ms,
                        "ts_valid_until_ms": statement.excluded.ts_valid_until_ms,
                        "key_json": statement.excluded.key_json,
                    },
                ),
                [
                    {
                        "server_name": server_name,
                        "key_id": key_id,
                        "from_server": from_server,
                        "ts_added_ms": ts_added_ms,
                        "ts_valid_until_ms": valid_until,
                        "key_json": encoded,
                    }
                    for key_id, valid_until in sorted(valid_until_by_key_id.items())
                ],
            )

    async def get_key_responses(
        self, server_name: str, key_ids: Collection[str] | None = None
    ) -> list[StoredKeyResponse]:
        """Every stored answer for `server_name`'s keys (`key_ids`, or all of them), the one
        valid longest first for each key."""
        query = select(server_keys_json).where(server_keys_json.c.server_name == server_name)
        if key_ids is not None:
            if not key_ids:
                return []
            query = query.where(server_keys_json.c.key_id.in_(sorted(key_ids)))
        query = query.order_by(
            server_keys_json.c.key_id,
            server_keys_json.c.ts_valid_until_ms.desc(),
            server_keys_json.c.ts_added_ms.desc(),
            server_keys_json.c.from_server,
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StoredKeyResponse(
                server_name=row.server_name,
                key_id=row.key_id,
                from_server=row.from_server,
                ts_added_ms=row.ts_added_ms,
                ts_valid_until_ms=row.ts_valid_until_ms,
                key_json=json.loads(bytes(row.key_json)),
            )
            for row in rows
        ]
