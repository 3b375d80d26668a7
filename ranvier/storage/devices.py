"""devices and user_ips: a user's logged-in sessions and where they were last seen from.

Devices own their access and refresh tokens: removing a device removes them in the same
transaction, so a deleted device can never act again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.device_lists import record_device_list_change
from ranvier.storage.metadata import metadata
from ranvier.storage.tokens import access_tokens, refresh_tokens

devices = Table(
    "devices",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Text, nullable=False),
    Column("display_name", Text, nullable=True),
    Column("last_seen_ts", BigInteger, nullable=True),
    Column("last_seen_ip", Text, nullable=True),
    Column("last_seen_user_agent", Text, nullable=True),
    Column("creation_ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id"),
)

user_ips = Table(
    "user_ips",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Text, nullable=True),
    Column("ip", Text, nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("last_seen_ts", BigInteger, nullable=False),
    UniqueConstraint("user_id", "ip", "user_agent"),
)


@dataclass(frozen=True)
class Device:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    last_seen_user_agent: str | None


@dataclass(frozen=True)
class DeletedDevices:
    access_token_ids: list[int]
    # the device_lists position of the deletion; None if no device existed
    position: int | None


@dataclass(frozen=True)
class Connection:
    device_id: str | None
    ip: str
    user_agent: str
    last_seen_ts: int


_DEVICE_COLUMNS = [getattr(devices.c, name) for name in Device.__dataclass_fields__]


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_device(
        self, user_id: str, device_id: str, display_name: str | None, now_ms: int
    ) -> bool:
        """Create the device unless it exists (a client may log in again with its own
        device ID, spec: /login device_id); returns whether it was created. An existing
        device keeps its name unless a new one is given."""
        async with self._db.transaction() as conn:
            existing = (
                await conn.execute(
                    select(devices.c.display_name).where(
                        devices.c.user_id == user_id, devices.c.device_id == device_id
                    )
                )
            ).first()
            if existing is not None:
                if display_name is not None:
                    await conn.execute(
                        update(devices)
                        .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
                        .values(display_name=display_name)
                    )
                return False
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(devices).values(
                            user_id=user_id,
                            device_id=device_id,
                            display_name=display_name,
                            creation_ts=now_ms,
                        )
                    )
            except IntegrityError:
                # a concurrent login made it first; that is the same outcome
                return False
            return True

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(*_DEVICE_COLUMNS).where(
                        devices.c.user_id == user_id, devices.c.device_id == device_id
                    )
                )
            ).first()
        return None if row is None else Device(**row._asdict())

    async def get_devices(self, user_id: str) -> list[Device]:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(*_DEVICE_COLUMNS)
                    .where(devices.c.user_id == user_id)
                    .order_by(devices.c.device_id)
                )
            ).all()
        return [Device(**row._asdict()) for row in rows]

    async def set_display_name(self, user_id: str, device_id: str, display_name: str) -> int | None:
        """The device_lists position of the rename (others see device names in
        /keys/query); None if there is no such device."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(devices)
                .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
                .values(display_name=display_name)
            )
            if not result.rowcount:
                return None
            return await record_device_list_change(conn, user_id, [device_id])

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> DeletedDevices:
        """Remove the devices with their access and refresh tokens and (by cascade) their
        end-to-end keys; returns the IDs of the access tokens removed, for the caller to
        drop from its caches, and the device_lists position of the change."""
        if not device_ids:
            return DeletedDevices([], None)
        async with self._db.transaction() as conn:
            token_ids = (
                (
                    await conn.execute(
                        select(access_tokens.c.id).where(
                            access_tokens.c.user_id == user_id,
                            access_tokens.c.device_id.in_(device_ids),
                        )
                    )
                )
                .scalars()
                .all()
            )
            await conn.execute(
                delete(access_tokens).where(
                    access_tokens.c.user_id == user_id, access_tokens.c.device_id.in_(device_ids)
                )
            )
            await conn.execute(
                delete(refresh_tokens).where(
                    refresh_tokens.c.user_id == user_id,
                    refresh_tokens.c.device_id.in_(device_ids),
                )
            )
            deleted = await conn.execute(
                delete(devices).where(
                    devices.c.user_id == user_id, devices.c.device_id.in_(device_ids)
                )
            )
            position = (
                await record_device_list_change(conn, user_id, device_ids)
                if deleted.rowcount
                else None
            )
        return DeletedDevices([int(token_id) for token_id in token_ids], position)

    async def record_last_seen(
        self, user_id: str, device_id: str | None, ip: str, user_agent: str, now_ms: int
    ) -> None:
        async with self._db.transaction() as conn:
            if device_id is not None:
                await conn.execute(
                    update(devices)
                    .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
                    .values(last_seen_ts=now_ms, last_seen_ip=ip, last_seen_user_agent=user_agent)
                )
            updated = await conn.execute(
                update(user_ips)
                .where(
                    user_ips.c.user_id == user_id,
                    user_ips.c.ip == ip,
                    user_ips.c.user_agent == user_agent,
                )
                .values(last_seen_ts=now_ms, device_id=device_id)
            )
            if not updated.rowcount:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(user_ips).values(
                                user_id=user_id,
                                device_id=device_id,
                                ip=ip,
                                user_agent=user_agent,
                                last_seen_ts=now_ms,
                            )
                        )
                except IntegrityError:
                    pass  # recorded concurrently by another request: just as good

    async def get_connections(self, user_id: str) -> list[Connection]:
        """Where the user was seen from, newest first (for the admin whois API)."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        user_ips.c.device_id,
                        user_ips.c.ip,
                        user_ips.c.user_agent,
                        user_ips.c.last_seen_ts,
                    )
                    .where(user_ips.c.user_id == user_id)
                    .order_by(user_ips.c.last_seen_ts.desc())
                )
            ).all()
        return [Connection(**row._asdict()) for row in rows]
