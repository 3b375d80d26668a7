"""access_tokens, refresh_tokens and login_tokens. Only SHA-256 hashes of tokens are stored.

Refresh rotates: refreshing creates a new refresh token, links the old one to it
(`next_token_id`) and drops the old access token. The old refresh token stays usable until
the new access token is first used, so a client that lost the refresh response is not
logged out; that first use deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    delete,
    false,
    insert,
    select,
    update,
)

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata
from ranvier.storage.users import users

_ID = BigInteger().with_variant(Integer(), "sqlite")

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("token_hash", Text, nullable=False),
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Text, nullable=False),
    Column("next_token_id", _ID, ForeignKey("refresh_tokens.id", ondelete="CASCADE")),
    Column("expiry_ts", BigInteger, nullable=True),
    Column("ultimate_session_expiry_ts", BigInteger, nullable=True),
    Column("creation_ts", BigInteger, nullable=False),
    # named as PostgreSQL named it when 0003_accounts created it unnamed (SQLite keeps it
    # unnamed): the name a later migration must use to alter it
    UniqueConstraint("token_hash", name="refresh_tokens_token_hash_key"),
    Index("ix_refresh_tokens_user_id_device_id", "user_id", "device_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("token_hash", Text, nullable=False),
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Text, nullable=True),
    Column("valid_until_ms", BigInteger, nullable=True),
    Column("refresh_token_id", _ID, ForeignKey("refresh_tokens.id", ondelete="CASCADE")),
    Column("used", Boolean, nullable=False, server_default=false()),
    Column("puppets_user_id", Text, nullable=True),
    Column("creation_ts", BigInteger, nullable=False),
    # named as PostgreSQL named it when 0003_accounts created it unnamed (SQLite keeps it
    # unnamed): the name a later migration must use to alter it
    UniqueConstraint("token_hash", name="access_tokens_token_hash_key"),
    Index("ix_access_tokens_user_id_device_id", "user_id", "device_id"),
)

login_tokens = Table(
    "login_tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("expiry_ts", BigInteger, nullable=False),
    Column("used_ts", BigInteger, nullable=True),
    Column("auth_provider_id", Text, nullable=True),
    Column("auth_provider_session_id", Text, nullable=True),
    Index("ix_login_tokens_expiry_ts", "expiry_ts"),
)


@dataclass(frozen=True)
class AccessTokenInfo:
    id: int
    user_id: str
    device_id: str | None
    valid_until_ms: int | None
    refresh_token_id: int | None
    used: bool
    puppets_user_id: str | None
    is_guest: bool
    admin: bool
    deactivated: bool
    locked: bool


@dataclass(frozen=True)
class RefreshTokenInfo:
    id: int
    user_id: str
    device_id: str
    next_token_id: int | None
    expiry_ts: int | None
    ultimate_session_expiry_ts: int | None


@dataclass(frozen=True)
class LoginTokenInfo:
    user_id: str
    auth_provider_id: str | None
    auth_provider_session_id: str | None


class TokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_access_token(
        self,
        *,
        token_hash: str,
        user_id: str,
        device_id: str | None,
        valid_until_ms: int | None,
        now_ms: int,
        refresh_token_id: int | None = None,
        puppets_user_id: str | None = None,
    ) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(access_tokens).values(
                    token_hash=token_hash,
                    user_id=user_id,
                    device_id=device_id,
                    valid_until_ms=valid_until_ms,
                    refresh_token_id=refresh_token_id,
                    puppets_user_id=puppets_user_id,
                    creation_ts=now_ms,
                )
            )
            # no RETURNING: SQLite before 3.35 lacks it, and lastrowid does the job
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    async def get_access_token(self, token_hash: str) -> AccessTokenInfo | None:
        query = (
            select(
                access_tokens.c.id,
                access_tokens.c.user_id,
                access_tokens.c.device_id,
                access_tokens.c.valid_until_ms,
                access_tokens.c.refresh_token_id,
                access_tokens.c.used,
                access_tokens.c.puppets_user_id,
                users.c.is_guest,
                users.c.admin,
                users.c.deactivated,
                users.c.locked,
            )
            .join(users, users.c.user_id == access_tokens.c.user_id)
            .where(access_tokens.c.token_hash == token_hash)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else AccessTokenInfo(**row._asdict())

    async def mark_access_token_used(self, token_id: int) -> None:
        """First use of a token minted by a refresh: the refresh token it replaced is done."""
        async with self._db.transaction() as conn:
            refresh_id = (
                await conn.execute(
                    select(access_tokens.c.refresh_token_id).where(access_tokens.c.id == token_id)
                )
            ).scalar_one_or_none()
            marked = await conn.execute(
                update(access_tokens)
                .where(access_tokens.c.id == token_id, access_tokens.c.used.is_(False))
                .values(used=True)
            )
            if marked.rowcount and refresh_id is not None:
                await conn.execute(
                    delete(refresh_tokens).where(refresh_tokens.c.next_token_id == refresh_id)
                )

    async def delete_access_token(self, token_id: int) -> None:
        async with self._db.transaction() as conn:
            refresh_id = (
                await conn.execute(
                    select(access_tokens.c.refresh_token_id).where(access_tokens.c.id == token_id)
                )
            ).scalar_one_or_none()
            await conn.execute(delete(access_tokens).where(access_tokens.c.id == token_id))
            if refresh_id is not None:
                await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.id == refresh_id))

    async def add_refresh_token(
        self,
        *,
        token_hash: str,
        user_id: str,
        device_id: str,
        expiry_ts: int | None,
        ultimate_session_expiry_ts: int | None,
        now_ms: int,
    ) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=token_hash,
                    user_id=user_id,
                    device_id=device_id,
                    expiry_ts=expiry_ts,
                    ultimate_session_expiry_ts=ultimate_session_expiry_ts,
                    creation_ts=now_ms,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    async def get_refresh_token(self, token_hash: str) -> RefreshTokenInfo | None:
        query = select(
            refresh_tokens.c.id,
            refresh_tokens.c.user_id,
            refresh_tokens.c.device_id,
            refresh_tokens.c.next_token_id,
            refresh_tokens.c.expiry_ts,
            refresh_tokens.c.ultimate_session_expiry_ts,
        ).where(refresh_tokens.c.token_hash == token_hash)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else RefreshTokenInfo(**row._asdict())

    async def replace_refresh_token(self, old_id: int, new_id: int) -> list[int]:
        """Link `old_id` to its replacement and drop the access tokens it had minted;
        returns their IDs for the caller's cache."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.id == old_id)
                .values(next_token_id=new_id)
            )
            condition = access_tokens.c.refresh_token_id == old_id
            dropped = list(
                (await conn.execute(select(access_tokens.c.id).where(condition))).scalars().all()
            )
            await conn.execute(delete(access_tokens).where(condition))
            # spec: using the new refresh token revokes the one it replaced
            predecessor = refresh_tokens.c.next_token_id == old_id
            predecessor_ids = select(refresh_tokens.c.id).where(predecessor)
            dropped += (
                (
                    await conn.execute(
                        select(access_tokens.c.id).where(
                            access_tokens.c.refresh_token_id.in_(predecessor_ids)
                        )
                    )
                )
                .scalars()
                .all()
            )
            await conn.execute(
                delete(access_tokens).where(access_tokens.c.refresh_token_id.in_(predecessor_ids))
            )
            await conn.execute(delete(refresh_tokens).where(predecessor))
        return [int(token_id) for token_id in dropped]

    async def delete_tokens_without_device(self, user_id: str) -> list[int]:
        """Access tokens with no device (admin puppeting); devices take their own tokens."""
        async with self._db.transaction() as conn:
            condition = (access_tokens.c.user_id == user_id) & access_tokens.c.device_id.is_(None)
            dropped = (
                (await conn.execute(select(access_tokens.c.id).where(condition))).scalars().all()
            )
            await conn.execute(delete(access_tokens).where(condition))
        return [int(token_id) for token_id in dropped]

    async def add_login_token(
        self,
        *,
        token_hash: str,
        user_id: str,
        expiry_ts: int,
        auth_provider_id: str | None,
        auth_provider_session_id: str | None,
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(login_tokens).values(
                    token_hash=token_hash,
                    user_id=user_id,
                    expiry_ts=expiry_ts,
                    auth_provider_id=auth_provider_id,
                    auth_provider_session_id=auth_provider_session_id,
                )
            )

    async def consume_login_token(self, token_hash: str, now_ms: int) -> LoginTokenInfo | None:
        """The token's owner if it is unexpired and unused, marking it used in the same
        statement so two concurrent logins cannot both spend it."""
        async with self._db.transaction() as conn:
            spent = await conn.execute(
                update(login_tokens)
                .where(
                    login_tokens.c.token_hash == token_hash,
                    login_tokens.c.used_ts.is_(None),
                    login_tokens.c.expiry_ts > now_ms,
                )
                .values(used_ts=now_ms)
            )
            row = None
            if spent.rowcount:
                row = (
                    await conn.execute(
                        select(
                            login_tokens.c.user_id,
                            login_tokens.c.auth_provider_id,
                            login_tokens.c.auth_provider_session_id,
                        ).where(login_tokens.c.token_hash == token_hash)
                    )
                ).first()
            # spent and expired tokens are of no further use
            await conn.execute(delete(login_tokens).where(login_tokens.c.expiry_ts <= now_ms))
        return None if row is None else LoginTokenInfo(**row._asdict())
