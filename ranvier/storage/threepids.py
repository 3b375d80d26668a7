"""Third-party identifiers (email addresses).

threepid_validation_session: one per (client_secret, medium, address) a client asked to
validate, with the send_attempt that last mailed a token and, once a token was submitted,
when. threepid_validation_token: the tokens mailed (as SHA-256 hashes), each with where to
send the browser after it and when it stops working. user_threepids: the addresses bound to
accounts, each address to one account at most.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

threepid_validation_session = Table(
    "threepid_validation_session",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("medium", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("client_secret", Text, nullable=False),
    Column("last_send_attempt", BigInteger, nullable=False),
    Column("validated_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index(
        "ix_threepid_validation_session_client_secret_medium_address",
        "client_secret",
        "medium",
        "address",
    ),
)

threepid_validation_token = Table(
    "threepid_validation_token",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column(
        "session_id",
        Text,
        ForeignKey("threepid_validation_session.session_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("next_link", Text, nullable=True),
    Column("expires_at", BigInteger, nullable=False),
)

user_threepids = Table(
    "user_threepids",
    metadata,
    Column("user_id", Text, nullable=False, index=True),
    Column("medium", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("validated_at", BigInteger, nullable=False),
    Column("added_at", BigInteger, nullable=False),
    UniqueConstraint("medium", "address", name="uq_user_threepids_medium_address"),
)


@dataclass(frozen=True)
class ValidationSession:
    session_id: str
    medium: str
    address: str
    client_secret: str
    last_send_attempt: int
    validated_at: int | None
    created_at: int


@dataclass(frozen=True)
class SubmittedToken:
    session: ValidationSession
    next_link: str | None
    expires_at: int


@dataclass(frozen=True)
class UserThreepid:
    user_id: str
    medium: str
    address: str
    validated_at: int
    added_at: int


class ThreepidInUse(Exception):
    """The address is bound to another account already."""


def _session(row: object) -> ValidationSession:
    return ValidationSession(**row._asdict())  # type: ignore[attr-defined]


class ThreepidStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- validation sessions --

    async def find_session(
        self, client_secret: str, medium: str, address: str
    ) -> ValidationSession | None:
        table = threepid_validation_session
        query = select(table).where(
            table.c.client_secret == client_secret,
            table.c.medium == medium,
            table.c.address == address,
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _session(row)

    async def get_session(self, session_id: str) -> ValidationSession | None:
        table = threepid_validation_session
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(table).where(table.c.session_id == session_id))
            ).first()
        return None if row is None else _session(row)

    async def start_session(
        self,
        session_id: str,
        *,
        medium: str,
        address: str,
        client_secret: str,
        send_attempt: int,
        token_hash: str,
        next_link: str | None,
        now_ms: int,
        expires_at: int,
    ) -> None:
        """A new session holding its first token."""
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(threepid_validation_session).values(
                    session_id=session_id,
                    medium=medium,
                    address=address,
                    client_secret=client_secret,
                    last_send_attempt=send_attempt,
                    validated_at=None,
                    created_at=now_ms,
                )
            )
            await self._add_token(conn, session_id, token_hash, next_link, expires_at)

    async def add_token(
        self,
        session_id: str,
        *,
        send_attempt: int,
        token_hash: str,
        next_link: str | None,
        expires_at: int,
    ) -> None:
        """Another token for the session, mailed for a later send_attempt."""
        table = threepid_validation_session
        async with self._db.transaction() as conn:
            await conn.execute(
                update(table)
                .where(table.c.session_id == session_id)
                .values(last_send_attempt=send_attempt)
            )
            await self._add_token(conn, session_id, token_hash, next_link, expires_at)

    @staticmethod
    async def _add_token(
        conn: AsyncConnection,
        session_id: str,
        token_hash: str,
        next_link: str | None,
        expires_at: int,
    ) -> None:
        await conn.execute(
            insert(threepid_validation_token).values(
                token_hash=token_hash,
                session_id=session_id,
                next_link=next_link,
                expires_at=expires_at,
            )
        )

    async def submit_token(
        self, session_id: str, token_hash: str, now_ms: int
    ) -> SubmittedToken | None:
        """Mark the session validated if `token_hash` is one of its tokens; the token is used
        up either way. None if the session holds no such token."""
        tokens, sessions = threepid_validation_token, threepid_validation_session
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    select(tokens.c.next_link, tokens.c.expires_at).where(
                        tokens.c.token_hash == token_hash, tokens.c.session_id == session_id
                    )
                )
            ).first()
            if row is None:
                return None
            await conn.execute(delete(tokens).where(tokens.c.token_hash == token_hash))
            if row.expires_at > now_ms:
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.session_id == session_id, sessions.c.validated_at.is_(None))
                    .values(validated_at=now_ms)
                )
            session_row = (
                await conn.execute(select(sessions).where(sessions.c.session_id == session_id))
            ).one()
        return SubmittedToken(_session(session_row), row.next_link, row.expires_at)

    async def delete_session(self, session_id: str) -> None:
        table = threepid_validation_session
        async with self._db.transaction() as conn:
            # the tokens go with it (ON DELETE CASCADE is not enforced on every SQLite)
            await conn.execute(
                delete(threepid_validation_token).where(
                    threepid_validation_token.c.session_id == session_id
                )
            )
            await conn.execute(delete(table).where(table.c.session_id == session_id))

    async def delete_sessions_created_before(self, before_ms: int) -> None:
        sessions, tokens = threepid_validation_session, threepid_validation_token
        old = select(sessions.c.session_id).where(sessions.c.created_at < before_ms)
        async with self._db.transaction() as conn:
            await conn.execute(delete(tokens).where(tokens.c.session_id.in_(old)))
            await conn.execute(delete(sessions).where(sessions.c.created_at < before_ms))

    # -- addresses bound to accounts --

    async def user_threepids(self, user_id: str) -> list[UserThreepid]:
        table = user_threepids
        query = (
            select(table)
            .where(table.c.user_id == user_id)
            .order_by(table.c.medium, table.c.address)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [UserThreepid(**row._asdict()) for row in rows]

    async def owner(self, medium: str, address: str) -> str | None:
        table = user_threepids
        query = select(table.c.user_id).where(table.c.medium == medium, table.c.address == address)
        async with self._db.read() as conn:
            user_id = (await conn.execute(query)).scalar_one_or_none()
        return None if user_id is None else str(user_id)

    async def add(
        self, user_id: str, medium: str, address: str, validated_at: int, added_at: int
    ) -> None:
        """Bind the address to the user; binding it again to the same user changes nothing.
        Raises ThreepidInUse if another account holds it."""
        table = user_threepids
        try:
            async with self._db.transaction() as conn:
                owner = (
                    await conn.execute(
                        select(table.c.user_id).where(
                            table.c.medium == medium, table.c.address == address
                        )
                    )
                ).scalar_one_or_none()
                if owner == user_id:
                    return
                if owner is not None:
                    raise ThreepidInUse()
                await conn.execute(
                    insert(table).values(
                        user_id=user_id,
                        medium=medium,
                        address=address,
                        validated_at=validated_at,
                        added_at=added_at,
                    )
                )
        except IntegrityError:
            # another request bound it between the check and the insert
            raise ThreepidInUse() from None

    async def remove(self, user_id: str, medium: str, address: str) -> bool:
        table = user_threepids
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(table).where(
                    table.c.user_id == user_id,
                    table.c.medium == medium,
                    table.c.address == address,
                )
            )
        return bool(result.rowcount)

    async def remove_all(self, user_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(delete(user_threepids).where(user_threepids.c.user_id == user_id))

    async def replace_all(
        self, user_id: str, threepids: list[tuple[str, str]], now_ms: int
    ) -> None:
        """The user's addresses become exactly `threepids` (medium, address); those kept keep
        their times. Raises ThreepidInUse, changing nothing, if another account holds one."""
        table = user_threepids
        wanted = set(threepids)
        try:
            async with self._db.transaction() as conn:
                rows = (
                    await conn.execute(
                        select(table.c.medium, table.c.address).where(table.c.user_id == user_id)
                    )
                ).all()
                held = {(row.medium, row.address) for row in rows}
                for medium, address in held - wanted:
                    await conn.execute(
                        delete(table).where(
                            table.c.user_id == user_id,
                            table.c.medium == medium,
                            table.c.address == address,
                        )
                    )
                for medium, address in sorted(wanted - held):
                    await conn.execute(
                        insert(table).values(
                            user_id=user_id,
                            medium=medium,
                            address=address,
                            validated_at=now_ms,
                            added_at=now_ms,
                        )
                    )
        except IntegrityError:
            raise ThreepidInUse() from None
