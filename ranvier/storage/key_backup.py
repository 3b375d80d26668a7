"""e2e_room_keys_versions and e2e_room_keys: users' server-side backups of room keys.

A version row lives on as a tombstone (`deleted`) once its backup is deleted: version
numbers then never repeat, and deleting a version twice can tell "deleted" from "never
existed". Every change to a version's keys bumps its etag in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    Table,
    Text,
    and_,
    delete,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

e2e_room_keys_versions = Table(
    "e2e_room_keys_versions",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("auth_data", Text, nullable=False),
    Column("etag", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("user_id", "version"),
)

e2e_room_keys = Table(
    "e2e_room_keys",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("room_id", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("first_message_index", BigInteger, nullable=False),
    Column("forwarded_count", BigInteger, nullable=False),
    Column("is_verified", Boolean, nullable=False),
    Column("session_data", Text, nullable=False),
    PrimaryKeyConstraint("user_id", "version", "room_id", "session_id"),
    ForeignKeyConstraint(
        ["user_id", "version"],
        ["e2e_room_keys_versions.user_id", "e2e_room_keys_versions.version"],
        ondelete="CASCADE",
    ),
)

# auth_data and session_data are opaque: clients (and SyTest) send strings as well as objects
JsonValue = Any
# how many session IDs go into one IN (...) list
_CHUNK = 500
# creates of one user's versions that may collide before giving up
_CREATE_ATTEMPTS = 10


@dataclass(frozen=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: JsonValue
    etag: int
    # how many keys the version holds
    count: int


@dataclass(frozen=True)
class RoomKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: JsonValue


class UploadRefused(Enum):
    NO_SUCH_VERSION = "no_such_version"
    NOT_CURRENT = "not_current"


@dataclass(frozen=True)
class KeysChanged:
    """The version's etag and key count after a change (or an attempt that kept them)."""

    etag: int
    count: int


@dataclass(frozen=True)
class NotCurrent:
    """The upload named an existing version that is not the current one."""

    current_version: int


def _dumps(value: JsonValue) -> str:
    # as sent: key order kept, so a client reads back exactly what it stored
    return orjson.dumps(value).decode()


def _loads(text: str) -> JsonValue:
    return orjson.loads(text)


def _live(user_id: str, version: int) -> ColumnElement[bool]:
    return and_(
        e2e_room_keys_versions.c.user_id == user_id,
        e2e_room_keys_versions.c.version == version,
        e2e_room_keys_versions.c.deleted.is_(False),
    )


def _keys_of(user_id: str, version: int) -> ColumnElement[bool]:
    return and_(e2e_room_keys.c.user_id == user_id, e2e_room_keys.c.version == version)


async def _count(conn: AsyncConnection, user_id: str, version: int) -> int:
    count = (
        await conn.execute(
            select(func.count()).select_from(e2e_room_keys).where(_keys_of(user_id, version))
        )
    ).scalar_one()
    return int(count)


async def _current_version(conn: AsyncConnection, user_id: str) -> int | None:
    version = (
        await conn.execute(
            select(func.max(e2e_room_keys_versions.c.version)).where(
                e2e_room_keys_versions.c.user_id == user_id,
                e2e_room_keys_versions.c.deleted.is_(False),
            )
        )
    ).scalar_one_or_none()
    return None if version is None else int(version)


async def _lock_live_etag(conn: AsyncConnection, user_id: str, version: int) -> int | None:
    """The live version's etag, its row locked until commit (PostgreSQL; SQLite writers
    already hold the database write lock), so concurrent changes to one backup queue."""
    etag = (
        await conn.execute(
            select(e2e_room_keys_versions.c.etag).where(_live(user_id, version)).with_for_update()
        )
    ).scalar_one_or_none()
    return None if etag is None else int(etag)


async def _bump_etag(conn: AsyncConnection, user_id: str, version: int, etag: int) -> int:
    await conn.execute(
        update(e2e_room_keys_versions)
        .where(
            e2e_room_keys_versions.c.user_id == user_id,
            e2e_room_keys_versions.c.version == version,
        )
        .values(etag=etag + 1)
    )
    return etag + 1


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class KeyBackupStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_version(self, user_id: str, algorithm: str, auth_data: JsonValue) -> int:
        """A new version, numbered after every earlier one (deleted ones included)."""
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                async with self._db.transaction() as conn:
                    highest = (
                        await conn.execute(
                            select(func.max(e2e_room_keys_versions.c.version)).where(
                                e2e_room_keys_versions.c.user_id == user_id
                            )
                        )
                    ).scalar_one_or_none()
                    version = 1 if highest is None else int(highest) + 1
                    await conn.execute(
                        insert(e2e_room_keys_versions).values(
                            user_id=user_id,
                            version=version,
                            algorithm=algorithm,
                            auth_data=_dumps(auth_data),
                            etag=0,
                            deleted=False,
                        )
                    )
                return version
            except IntegrityError:
                # PostgreSQL: a concurrent create took that number; take the next one
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def get_version(self, user_id: str, version: int | None) -> BackupVersion | None:
        """The live (not deleted) version, or the current one with `version` None."""
        async with self._db.read() as conn:
            if version is None:
                version = await _current_version(conn, user_id)
                if version is None:
                    return None
            row = (
                await conn.execute(
                    select(
                        e2e_room_keys_versions.c.algorithm,
                        e2e_room_keys_versions.c.auth_data,
                        e2e_room_keys_versions.c.etag,
                    ).where(_live(user_id, version))
                )
            ).first()
            if row is None:
                return None
            count = await _count(conn, user_id, version)
        return BackupVersion(
            version=version,
            algorithm=row.algorithm,
            auth_data=_loads(row.auth_data),
            etag=int(row.etag),
            count=count,
        )

    async def set_auth_data(self, user_id: str, version: int, auth_data: JsonValue) -> bool:
        """False if the version is not live."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(e2e_room_keys_versions)
                .where(_live(user_id, version))
                .values(auth_data=_dumps(auth_data))
            )
        return bool(result.rowcount)

    async def delete_version(self, user_id: str, version: int) -> bool:
        """Delete the version's keys and mark it deleted; False if it never existed."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(e2e_room_keys_versions)
                .where(
                    e2e_room_keys_versions.c.user_id == user_id,
                    e2e_room_keys_versions.c.version == version,
                )
                .values(deleted=True)
            )
            await conn.execute(delete(e2e_room_keys).where(_keys_of(user_id, version)))
        return bool(result.rowcount)

    async def upload_keys(
        self,
        user_id: str,
        version: int,
        keys: list[RoomKey],
        replaces: Callable[[RoomKey, RoomKey], bool],
    ) -> KeysChanged | NotCurrent | UploadRefused:
        """Store `keys` in the version if it is the current one. A session already backed up
        is overwritten only when `replaces(new, existing)` says so."""
        async with self._db.transaction() as conn:
            current = await _current_version(conn, user_id)
            if current is None:
                return UploadRefused.NO_SUCH_VERSION
            etag = await _lock_live_etag(conn, user_id, version)
            if etag is None:
                return UploadRefused.NO_SUCH_VERSION
            if version != current:
                return NotCurrent(current)
            existing = await self._existing(conn, user_id, version, keys)
            # (room_id, session_id) -> the key to store there
            to_write: dict[tuple[str, str], RoomKey] = {}
            for key in keys:
                where = (key.room_id, key.session_id)
                old = existing.get(where)
                if old is None or replaces(key, old):
                    to_write[where] = key
            inserts = [key for where, key in to_write.items() if where not in existing]
            if inserts:
                await conn.execute(
                    insert(e2e_room_keys),
                    [
                        {"user_id": user_id, "version": version, **_key_values(key)}
                        for key in inserts
                    ],
                )
            for where, key in to_write.items():
                if where in existing:
                    await conn.execute(
                        update(e2e_room_keys)
                        .where(
                            _keys_of(user_id, version),
                            e2e_room_keys.c.room_id == key.room_id,
                            e2e_room_keys.c.session_id == key.session_id,
                        )
                        .values(**_key_values(key))
                    )
            changed = bool(to_write)
            if changed:
                etag = await _bump_etag(conn, user_id, version, etag)
            return KeysChanged(etag=etag, count=await _count(conn, user_id, version))

    async def _existing(
        self, conn: AsyncConnection, user_id: str, version: int, keys: list[RoomKey]
    ) -> dict[tuple[str, str], RoomKey]:
        room_id_to_session_ids: dict[str, list[str]] = {}
        for key in keys:
            room_id_to_session_ids.setdefault(key.room_id, []).append(key.session_id)
        found: dict[tuple[str, str], RoomKey] = {}
        for room_id, session_ids in room_id_to_session_ids.items():
            for chunk in _chunks(sorted(set(session_ids))):
                rows = await conn.execute(
                    select(*_KEY_COLUMNS).where(
                        _keys_of(user_id, version),
                        e2e_room_keys.c.room_id == room_id,
                        e2e_room_keys.c.session_id.in_(chunk),
                    )
                )
                for row in rows:
                    key = _room_key(row)
                    found[(key.room_id, key.session_id)] = key
        return found

    async def get_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None
    ) -> list[RoomKey] | None:
        """The version's keys, of one room or one session if given; None if the version is
        not live."""
        async with self._db.read() as conn:
            live = (
                await conn.execute(
                    select(e2e_room_keys_versions.c.version).where(_live(user_id, version))
                )
            ).first()
            if live is None:
                return None
            query = select(*_KEY_COLUMNS).where(_keys_of(user_id, version))
            if room_id is not None:
                query = query.where(e2e_room_keys.c.room_id == room_id)
            if session_id is not None:
                query = query.where(e2e_room_keys.c.session_id == session_id)
            rows = await conn.execute(
                query.order_by(e2e_room_keys.c.room_id, e2e_room_keys.c.session_id)
            )
            return [_room_key(row) for row in rows]

    async def delete_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None
    ) -> KeysChanged | None:
        """Delete the version's keys, of one room or one session if given; None if the
        version is not live."""
        async with self._db.transaction() as conn:
            etag = await _lock_live_etag(conn, user_id, version)
            if etag is None:
                return None
            statement = delete(e2e_room_keys).where(_keys_of(user_id, version))
            if room_id is not None:
                statement = statement.where(e2e_room_keys.c.room_id == room_id)
            if session_id is not None:
                statement = statement.where(e2e_room_keys.c.session_id == session_id)
            result = await conn.execute(statement)
            if result.rowcount:
                etag = await _bump_etag(conn, user_id, version, etag)
            return KeysChanged(etag=etag, count=await _count(conn, user_id, version))

    async def delete_user(self, user_id: str) -> None:
        """Every version and key of the user, tombstones included (deactivation)."""
        async with self._db.transaction() as conn:
            await conn.execute(delete(e2e_room_keys).where(e2e_room_keys.c.user_id == user_id))
            await conn.execute(
                delete(e2e_room_keys_versions).where(e2e_room_keys_versions.c.user_id == user_id)
            )


_KEY_COLUMNS = [
    e2e_room_keys.c.room_id,
    e2e_room_keys.c.session_id,
    e2e_room_keys.c.first_message_index,
    e2e_room_keys.c.forwarded_count,
    e2e_room_keys.c.is_verified,
    e2e_room_keys.c.session_data,
]


def _key_values(key: RoomKey) -> dict[str, Any]:
    return {
        "room_id": key.room_id,
        "session_id": key.session_id,
        "first_message_index": key.first_message_index,
        "forwarded_count": key.forwarded_count,
        "is_verified": key.is_verified,
        "session_data": _dumps(key.session_data),
    }


def _room_key(row: Any) -> RoomKey:
    return RoomKey(
        room_id=row.room_id,
        session_id=row.session_id,
        first_message_index=int(row.first_message_index),
        forwarded_count=int(row.forwarded_count),
        is_verified=bool(row.is_verified),
        session_data=_loads(row.session_data),
    )
