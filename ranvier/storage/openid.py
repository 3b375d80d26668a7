"""open_id_tokens: tokens a user hands to a third party (an integration manager, a widget)
so it can learn their user ID from GET /_matrix/federation/v1/openid/userinfo.

Stored as SHA-256 hashes, like access tokens; times are ms since the epoch.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Table, Text, delete, insert, select

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

open_id_tokens = Table(
    "open_id_tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("valid_until_ms", BigInteger, nullable=False),
    Index("ix_open_id_tokens_valid_until_ms", "valid_until_ms"),
)


class OpenIdTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_token(self, token_hash: str, user_id: str, valid_until_ms: int, now: int) -> None:
        async with self._db.transaction() as conn:
            # expired tokens answer nothing, so the table keeps only live ones: each new
            # token sweeps the dead (the index keeps that cheap)
            await conn.execute(delete(open_id_tokens).where(open_id_tokens.c.valid_until_ms <= now))
            await conn.execute(
                insert(open_id_tokens).values(
                    token_hash=token_hash, user_id=user_id, valid_until_ms=valid_until_ms
                )
            )

    async def user_for_token(self, token_hash: str, now: int) -> str | None:
        """The user a token was issued to, while it is valid."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(open_id_tokens.c.user_id).where(
                        open_id_tokens.c.token_hash == token_hash,
                        open_id_tokens.c.valid_until_ms > now,
                    )
                )
            ).first()
        return None if row is None else str(row.user_id)
