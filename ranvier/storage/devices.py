"""devices and user_ips: a user's logged-in sessions and where they were last seen from.

Devices own their access and refresh tokens: removing a device removes them in the same
transaction, so a deleted device can never act again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database, insert_for
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
    # named as PostgreSQL named it when 0003_accounts created it unnamed (SQLite keeps it
    # unnamed): the name a later migration must use to alter it
    UniqueConstraint("user_id", "ip", "user_agent", name="user_ips_user_id_ip_user_agent_key"),
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


@dataclass(frozen=True)
class LastSeen:
    """A session's latest request from one address and client."""

    user_id: str
    device_id: str | None
    ip: str
    user_agent: str
    ts: int


_DEVICE_COLUMNS = [getattr(devices.c, name) for name in Device.__dataclass_fields__]

_UPDATE_DEVICE_LAST_SEEN = (
    update(devices)
    .where(
        devices.c.user_id == bindparam("b_user_id"),
        devices.c.device_id == bindparam("b_device_id"),
        or_(devices.c.last_seen_ts.is_(None), devices.c.last_seen_ts <= bindparam("b_ts")),
    )
    .values(
        last_seen_ts=bindparam("b_ts"),
        last_seen_ip=bindparam("b_ip"),
        last_seen_user_agent=bindparam("b_user_agent"),
    )
)


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_device(
        self, user_id: str, device_id: str, display_name: str | None, now_ms: int
    ) -> int | None:
        """Create the device unless it exists (a client may log in again with its own
        device ID, spec: /login device_id); returns the device_lists position of its
        creation (room-mates refetch the user's keys, as Synapse tells them of every new
        device), or None if it existed. An existing device keeps its name unless a new one
        is given."""
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
                return None
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
                return None
            return await record_device_list_change(conn, user_id, [device_id])

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

    async def record_last_seen(self, seen: Sequence[LastSeen]) -> None:
        """Write a batch of last-seen data in one transaction. Each row only moves forward
        in time, so a batch that lost a race with a newer one changes nothing."""
        if not seen:
            return
        device_id_to_newest: dict[tuple[str, str], LastSeen] = {}
        for entry in seen:
            if entry.device_id is None:
                continue
            key = (entry.user_id, entry.device_id)
            known = device_id_to_newest.get(key)
            if known is None or entry.ts > known.ts:
                device_id_to_newest[key] = entry
        # a fixed order takes PostgreSQL's row locks in the same order in every batch
        device_rows = [
            {
                "b_user_id": e.user_id,
                "b_device_id": e.device_id,
                "b_ts": e.ts,
                "b_ip": e.ip,
                "b_user_agent": e.user_agent,
            }
            for _, e in sorted(device_id_to_newest.items())
        ]
        connection_rows = sorted(
            (
                {
                    "user_id": e.user_id,
                    "ip": e.ip,
                    "user_agent": e.user_agent,
                    "device_id": e.device_id,
                    "last_seen_ts": e.ts,
                }
                for e in seen
            ),
            key=lambda row: (row["user_id"], row["ip"], row["user_agent"]),
        )
        async with self._db.transaction() as conn:
            if device_rows:
                await conn.execute(_UPDATE_DEVICE_LAST_SEEN, device_rows)
            insert_connection = insert_for(conn)(user_ips)
            await conn.execute(
                insert_connection.on_conflict_do_update(
                    index_elements=["user_id", "ip", "user_agent"],
                    set_={
                        "last_seen_ts": insert_connection.excluded.last_seen_ts,
                        "device_id": insert_connection.excluded.device_id,
                    },
                    where=user_ips.c.last_seen_ts <= insert_connection.excluded.last_seen_ts,
                ),
                connection_rows,
            )

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
