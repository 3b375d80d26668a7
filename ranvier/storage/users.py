"""users: local accounts, with their password hash and flags.

Times are ms since the epoch. A user row is never deleted: a deactivated user ID stays
taken, as the spec requires (user IDs must not be reused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Column, Table, Text, false, func, insert, select, true
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata
from ranvier.storage.profiles import clear_profile, create_profile

users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("password_hash", Text, nullable=True),
    Column("admin", Boolean, nullable=False, server_default=false()),
    Column("is_guest", Boolean, nullable=False, server_default=false()),
    Column("deactivated", Boolean, nullable=False, server_default=false()),
    Column("erased", Boolean, nullable=False, server_default=false()),
    Column("user_type", Text, nullable=True),
    Column("creation_ts", BigInteger, nullable=False),
    Column("appservice_id", Text, nullable=True),
    Column("shadow_banned", Boolean, nullable=False, server_default=false()),
    Column("locked", Boolean, nullable=False, server_default=false()),
    Column("suspended", Boolean, nullable=False, server_default=false()),
    Column("approved", Boolean, nullable=False, server_default=true()),
    Column("consent_version", Text, nullable=True),
    Column("consent_ts", BigInteger, nullable=True),
    # the policy version the user was last sent a server notice about (0029_consent)
    Column("consent_server_notice_sent", Text, nullable=True),
)


class UserExistsError(Exception):
    """The user ID is taken (possibly by a concurrent registration)."""


@dataclass(frozen=True)
class User:
    user_id: str
    password_hash: str | None
    admin: bool
    is_guest: bool
    deactivated: bool
    erased: bool
    user_type: str | None
    creation_ts: int
    appservice_id: str | None
    shadow_banned: bool
    locked: bool
    suspended: bool
    approved: bool


_USER_COLUMNS = [getattr(users.c, name) for name in User.__dataclass_fields__]


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._change_listeners: list[Callable[[str], None]] = []

    def on_user_changed(self, listener: Callable[[str], None]) -> None:
        """Call `listener(user_id)` after any change to a user's row, so caches of user
        flags (the access token cache holds admin/deactivated/locked) drop it at once."""
        self._change_listeners.append(listener)

    async def _update(self, user_id: str, **values: object) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(sql_update(users).where(users.c.user_id == user_id).values(**values))
        self._changed(user_id)

    def _changed(self, user_id: str) -> None:
        for listener in self._change_listeners:
            listener(user_id)

    async def create_user(
        self,
        user_id: str,
        *,
        password_hash: str | None,
        creation_ts: int,
        admin: bool = False,
        is_guest: bool = False,
        user_type: str | None = None,
        appservice_id: str | None = None,
        displayname: str | None = None,
    ) -> None:
        """Insert the user and its profile together; UserExistsError if the ID is taken."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    insert(users).values(
                        user_id=user_id,
                        password_hash=password_hash,
                        admin=admin,
                        is_guest=is_guest,
                        user_type=user_type,
                        creation_ts=creation_ts,
                        appservice_id=appservice_id,
                    )
                )
                await create_profile(conn, user_id, displayname)
        except IntegrityError as exc:
            raise UserExistsError(user_id) from exc

    async def get_user(self, user_id: str) -> User | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(*_USER_COLUMNS).where(users.c.user_id == user_id))
            ).first()
        if row is None:
            return None
        return User(**row._asdict())

    async def user_exists_case_insensitive(self, user_id: str) -> bool:
        """Synapse refuses IDs that differ from an existing one only in case (older servers
        allowed upper case), so we do too."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(users.c.user_id).where(func.lower(users.c.user_id) == user_id.lower())
                )
            ).first()
        return row is not None

    async def count_guests(self) -> int:
        async with self._db.read() as conn:
            count = (
                await conn.execute(select(func.count()).select_from(users).where(users.c.is_guest))
            ).scalar_one()
        return int(count)

    async def upgrade_guest(self, user_id: str, password_hash: str | None) -> bool:
        """Make a guest a full user with this password; False if it is not (or no longer)
        a live guest, so of two racing upgrades only one succeeds."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                sql_update(users)
                .where(users.c.user_id == user_id, users.c.is_guest, ~users.c.deactivated)
                .values(is_guest=False, password_hash=password_hash)
            )
        self._changed(user_id)
        return bool(result.rowcount)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        await self._update(user_id, password_hash=password_hash)

    async def set_admin(self, user_id: str, admin: bool) -> None:
        await self._update(user_id, admin=admin)

    async def set_locked(self, user_id: str, locked: bool) -> None:
        await self._update(user_id, locked=locked)

    async def set_suspended(self, user_id: str, suspended: bool) -> None:
        await self._update(user_id, suspended=suspended)

    async def set_shadow_banned(self, user_id: str, shadow_banned: bool) -> None:
        await self._update(user_id, shadow_banned=shadow_banned)

    async def get_shadow_banned_users(self) -> set[str]:
        query = select(users.c.user_id).where(users.c.shadow_banned == true())
        async with self._db.read() as conn:
            return {row.user_id for row in await conn.execute(query)}

    async def set_user_type(self, user_id: str, user_type: str | None) -> None:
        await self._update(user_id, user_type=user_type)

    async def set_consent(self, user_id: str, version: str, ts: int) -> None:
        """The user accepted the policy of `version` at `ts` (user_consent)."""
        await self._update(user_id, consent_version=version, consent_ts=ts)

    async def get_consent_version(self, user_id: str) -> str | None:
        async with self._db.read() as conn:
            result = await conn.execute(
                select(users.c.consent_version).where(users.c.user_id == user_id)
            )
            version: str | None = result.scalar()
        return version

    async def get_consent_notice_state(self, user_id: str) -> tuple[str | None, str | None]:
        """(the version the user accepted, the version they were last sent a notice of)."""
        query = select(users.c.consent_version, users.c.consent_server_notice_sent).where(
            users.c.user_id == user_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return (None, None) if row is None else (row[0], row[1])

    async def set_consent_server_notice_sent(self, user_id: str, version: str) -> None:
        await self._update(user_id, consent_server_notice_sent=version)

    async def reactivate(self, user_id: str) -> None:
        """Undo deactivation (an admin's decision); the account is no longer erased either."""
        await self._update(user_id, deactivated=False, erased=False)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        """Mark the user deactivated and forget its password; with `erase`, also its
        profile. The caller removes devices and tokens first."""
        async with self._db.transaction() as conn:
            values: dict[str, object] = {"deactivated": True, "password_hash": None}
            if erase:
                values["erased"] = True
            await conn.execute(sql_update(users).where(users.c.user_id == user_id).values(**values))
            if erase:
                await clear_profile(conn, user_id)
        self._changed(user_id)
