"""registration_tokens: tokens that let people register when `registration_requires_token`
is set, and registration_token_sessions: the user-interactive auth sessions holding one.

A token is valid while it has not expired and its uses (`pending` + `completed`) are below
`uses_allowed`. `pending` is not stored: it counts the sessions holding the token that are
younger than the UIA session lifetime, so abandoned sessions release their use by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    ForeignKey,
    Integer,
    Select,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

registration_tokens = Table(
    "registration_tokens",
    metadata,
    Column("token", Text, primary_key=True),
    Column("uses_allowed", Integer, nullable=True),
    Column("completed", Integer, nullable=False, server_default="0"),
    Column("expiry_time", BigInteger, nullable=True),
)

registration_token_sessions = Table(
    "registration_token_sessions",
    metadata,
    Column(
        "session_id",
        Text,
        ForeignKey("ui_auth_sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "token",
        Text,
        ForeignKey("registration_tokens.token", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("creation_ts", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_time: int | None  # ms since the epoch

    def as_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "uses_allowed": self.uses_allowed,
            "pending": self.pending,
            "completed": self.completed,
            "expiry_time": self.expiry_time,
        }


class _Unset:
    """Marks an attribute that an update leaves alone (None means "set to NULL")."""


UNSET: Any = _Unset()


class RegistrationTokenStore:
    def __init__(self, db: Database, session_lifetime_ms: int) -> None:
        self._db = db
        # sessions older than this no longer hold a use of their token
        self._session_lifetime_ms = session_lifetime_ms

    def _pending(self, now_ms: int) -> Any:
        sessions = registration_token_sessions
        return (
            select(func.count())
            .where(
                sessions.c.token == registration_tokens.c.token,
                sessions.c.creation_ts > now_ms - self._session_lifetime_ms,
            )
            .scalar_subquery()
        )

    def _select(self, now_ms: int) -> Select[Any]:
        return select(
            registration_tokens.c.token,
            registration_tokens.c.uses_allowed,
            self._pending(now_ms).label("pending"),
            registration_tokens.c.completed,
            registration_tokens.c.expiry_time,
        )

    def _valid(self, now_ms: int) -> ColumnElement[bool]:
        table = registration_tokens
        return and_(
            or_(
                table.c.uses_allowed.is_(None),
                self._pending(now_ms) + table.c.completed < table.c.uses_allowed,
            ),
            or_(table.c.expiry_time.is_(None), table.c.expiry_time > now_ms),
        )

    async def create(self, token: str, uses_allowed: int | None, expiry_time: int | None) -> bool:
        """False if the token already exists."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    insert(registration_tokens).values(
                        token=token, uses_allowed=uses_allowed, expiry_time=expiry_time
                    )
                )
        except IntegrityError:
            return False
        return True

    async def get(self, token: str, now_ms: int) -> RegistrationToken | None:
        async with self._db.read() as conn:
            return await self._get(conn, token, now_ms)

    async def _get(
        self, conn: AsyncConnection, token: str, now_ms: int
    ) -> RegistrationToken | None:
        query = self._select(now_ms).where(registration_tokens.c.token == token)
        row = (await conn.execute(query)).first()
        return None if row is None else RegistrationToken(**row._asdict())

    async def list_tokens(self, valid: bool | None, now_ms: int) -> list[RegistrationToken]:
        """All tokens; with `valid`, only the valid ones (True) or the used up or expired
        ones (False)."""
        query = self._select(now_ms).order_by(registration_tokens.c.token)
        if valid is True:
            query = query.where(self._valid(now_ms))
        elif valid is False:
            query = query.where(not_(self._valid(now_ms)))
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [RegistrationToken(**row._asdict()) for row in rows]

    async def update(
        self, token: str, now_ms: int, *, uses_allowed: Any = UNSET, expiry_time: Any = UNSET
    ) -> RegistrationToken | None:
        """Change the attributes given (not UNSET); None if there is no such token."""
        values = {
            name: value
            for name, value in (("uses_allowed", uses_allowed), ("expiry_time", expiry_time))
            if value is not UNSET
        }
        async with self._db.transaction() as conn:
            if values:
                await conn.execute(
                    update(registration_tokens)
                    .where(registration_tokens.c.token == token)
                    .values(**values)
                )
            return await self._get(conn, token, now_ms)

    async def delete(self, token: str) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(registration_tokens).where(registration_tokens.c.token == token)
            )
        return bool(result.rowcount)

    async def is_valid(self, token: str, now_ms: int) -> bool:
        query = select(registration_tokens.c.token).where(
            registration_tokens.c.token == token, self._valid(now_ms)
        )
        async with self._db.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def session_token(self, session_id: str) -> str | None:
        """The token a UIA session holds, if any."""
        sessions = registration_token_sessions
        async with self._db.read() as conn:
            token = (
                await conn.execute(
                    select(sessions.c.token).where(sessions.c.session_id == session_id)
                )
            ).scalar_one_or_none()
        return None if token is None else str(token)

    async def hold(self, session_id: str, token: str, now_ms: int) -> bool:
        """Let the UIA session hold one use of `token` (it becomes `pending`) if the token is
        valid; False if it is not. The token row is locked so that two sessions cannot both
        take its last use."""
        sessions = registration_token_sessions
        async with self._db.transaction() as conn:
            held = (
                await conn.execute(
                    select(sessions.c.token).where(sessions.c.session_id == session_id)
                )
            ).scalar_one_or_none()
            if held is not None:
                # a session holds one use at most; retrying with the same token is fine
                return bool(held == token)
            locked = (
                await conn.execute(
                    select(registration_tokens.c.token)
                    .where(registration_tokens.c.token == token)
                    .with_for_update()
                )
            ).first()
            if locked is None:
                return False
            valid = (
                await conn.execute(
                    select(registration_tokens.c.token).where(
                        registration_tokens.c.token == token, self._valid(now_ms)
                    )
                )
            ).first()
            if valid is None:
                return False
            await conn.execute(
                insert(sessions).values(session_id=session_id, token=token, creation_ts=now_ms)
            )
        return True

    async def complete(self, session_id: str, token: str) -> None:
        """A registration finished with the token: its use moves from pending to completed."""
        sessions = registration_token_sessions
        async with self._db.transaction() as conn:
            await conn.execute(delete(sessions).where(sessions.c.session_id == session_id))
            await conn.execute(
                update(registration_tokens)
                .where(registration_tokens.c.token == token)
                .values(completed=registration_tokens.c.completed + 1)
            )
