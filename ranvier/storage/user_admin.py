"""The admin's read-only views over accounts: one user with its profile and last activity,
and the paginated, filtered, sorted user list of `GET /_synapse/admin/v2/users`.

These read the accounts tables (users, profiles, user_ips) owned by their stores; writes
stay with those stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, func, or_, select

from ranvier.storage.database import Database
from ranvier.storage.devices import user_ips
from ranvier.storage.profiles import profiles
from ranvier.storage.users import users

OrderBy = Literal[
    "name",
    "is_guest",
    "admin",
    "user_type",
    "deactivated",
    "shadow_banned",
    "displayname",
    "avatar_url",
    "creation_ts",
    "last_seen_ts",
    "locked",
]
ORDER_BY_VALUES: tuple[str, ...] = OrderBy.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class UserAdminView:
    name: str
    is_guest: bool
    admin: bool
    user_type: str | None
    deactivated: bool
    erased: bool
    shadow_banned: bool
    locked: bool
    suspended: bool
    displayname: str | None
    avatar_url: str | None
    creation_ts: int  # ms since the epoch
    last_seen_ts: int | None
    appservice_id: str | None
    consent_version: str | None
    consent_ts: int | None


@dataclass(frozen=True)
class UserListQuery:
    start: int = 0
    limit: int = 100
    # substring of the user ID
    user_id: str | None = None
    # substring of the localpart or the display name; wins over user_id
    name: str | None = None
    guests: bool = True
    # False: leave deactivated users out; None: include them
    deactivated: bool | None = False
    # None: admins and others; True: only admins; False: no admins
    admins: bool | None = None
    locked: bool = False
    order_by: OrderBy = "name"
    backwards: bool = False


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserAdminQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _select(self) -> Select[Any]:
        last_seen = (
            select(
                user_ips.c.user_id.label("user_id"),
                func.max(user_ips.c.last_seen_ts).label("last_seen_ts"),
            )
            .group_by(user_ips.c.user_id)
            .subquery("last_seen")
        )
        return (
            select(
                users.c.user_id.label("name"),
                users.c.is_guest,
                users.c.admin,
                users.c.user_type,
                users.c.deactivated,
                users.c.erased,
                users.c.shadow_banned,
                users.c.locked,
                users.c.suspended,
                profiles.c.displayname,
                profiles.c.avatar_url,
                users.c.creation_ts,
                last_seen.c.last_seen_ts,
                users.c.appservice_id,
                users.c.consent_version,
                users.c.consent_ts,
            )
            .select_from(users)
            .outerjoin(profiles, profiles.c.user_id == users.c.user_id)
            .outerjoin(last_seen, last_seen.c.user_id == users.c.user_id)
        )

    async def get_user(self, user_id: str) -> UserAdminView | None:
        query = self._select().where(users.c.user_id == user_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else UserAdminView(**row._asdict())

    async def list_users(self, query: UserListQuery) -> tuple[list[UserAdminView], int]:
        """One page of users and how many match in all."""
        conditions: list[ColumnElement[bool]] = []
        if query.name:
            pattern = f"%{_escape_like(query.name.lower())}%"
            conditions.append(
                or_(
                    # the localpart: between "@" and the first ":"
                    func.lower(users.c.user_id).like(f"@{pattern}:%", escape="\\"),
                    func.lower(profiles.c.displayname).like(pattern, escape="\\"),
                )
            )
        elif query.user_id:
            pattern = f"%{_escape_like(query.user_id.lower())}%"
            conditions.append(func.lower(users.c.user_id).like(pattern, escape="\\"))
        if not query.guests:
            conditions.append(users.c.is_guest.is_(False))
        if query.deactivated is not None:
            conditions.append(users.c.deactivated.is_(query.deactivated))
        if query.admins is not None:
            conditions.append(users.c.admin.is_(query.admins))
        if not query.locked:
            conditions.append(users.c.locked.is_(False))

        base = self._select().where(*conditions).subquery("matching")
        order_column = base.c[query.order_by]
        ordered = order_column.desc() if query.backwards else order_column.asc()
        # NULLs sort as the smallest value on both engines, so pages are identical
        null_order = order_column.is_not(None) if not query.backwards else order_column.is_(None)
        page = (
            select(base)
            .order_by(null_order, ordered, base.c.name.asc())
            .limit(query.limit)
            .offset(query.start)
        )
        async with self._db.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(base))).scalar_one()
            rows = (await conn.execute(page)).all()
        return [UserAdminView(**row._asdict()) for row in rows], int(total)
